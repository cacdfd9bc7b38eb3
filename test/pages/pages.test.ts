/**
 * The approvals inbox and connected accounts pages over real HTTP (issue 15, items 2-4): sign-in
 * with the identity provider (authorization code + PKCE), sessions, CSRF, XSS, security headers,
 * and that a person who may not decide an approval can neither see it nor decide it by its id.
 * Express, Hono and a plain fetch handler serve the same pages.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BASE, Browser, csrfOf, startPagesApp, type PagesApp } from './harness.js';

const EMPTY_SHA = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async function refundApproval(app: PagesApp, over: { description?: string; path?: string; agentId?: string; userId?: string } = {}): Promise<string> {
  const check = await app.approvals.check({
    agentId: over.agentId ?? 'refund-agent', userId: over.userId ?? 'alice', tool: 'payments', method: 'POST', path: over.path ?? `/v1/refunds/${Math.random().toString(36).slice(2)}`,
    query: '?card=4242424242424242', bodySha256: EMPTY_SHA, host: '127.0.0.1:1', rule: { approvedBy: { groups: ['finance'] } },
    ...(over.description !== undefined ? { description: over.description } : {}),
  });
  return check.id;
}

describe.each(['express', 'hono', 'fetch'] as const)('pages on %s', (kind) => {
  let app: PagesApp;
  beforeAll(async () => {
    app = await startPagesApp(kind);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('sign-in: PKCE + state + nonce, browser-bound; a new encrypted HttpOnly session cookie; no token in any URL', async () => {
    const b = new Browser(app.origin);
    const first = await b.get(`${BASE}/approvals`);
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe(`${BASE}/sign-in?return=${encodeURIComponent(`${BASE}/approvals`)}`);
    const start = await b.get(`${BASE}/sign-in?return=${encodeURIComponent(`${BASE}/approvals`)}`);
    expect(start.status).toBe(302);
    const auth = new URL(start.headers.get('location') as string);
    expect(auth.origin).toBe(app.idp.issuer);
    expect(auth.searchParams.get('code_challenge_method')).toBe('S256');
    for (const p of ['state', 'nonce', 'code_challenge']) expect(auth.searchParams.get(p)).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    const loginCookie = start.headers.getSetCookie().find((c) => c.startsWith('agent-iam-sign-in='));
    expect(loginCookie).toMatch(/HttpOnly/);
    expect(loginCookie).toMatch(/SameSite=Lax/);
    expect(loginCookie).not.toMatch(/Secure/); // http://127.0.0.1 development only
    const callback = await app.idp.authorize(auth, { userId: 'erin' });

    // another browser (no sign-in cookie) presenting the callback is refused (login CSRF)
    const other = new Browser(app.origin);
    const stolen = await other.get(callback);
    expect(stolen.status).toBe(403);
    expect(other.cookies.has('agent-iam-session')).toBe(false);

    // the state was spent by that attempt: the real browser starts again
    expect((await b.get(callback)).status).toBe(400);
    const target = await b.signIn(app.idp, 'erin');
    expect(target).toBe(`${BASE}/approvals`);
    const session = b.cookies.get('agent-iam-session') as string;
    expect(session).toMatch(/^v1\.[A-Za-z0-9_-]+$/);
    expect(session).not.toContain('erin');
    expect(b.cookies.has('agent-iam-sign-in')).toBe(false);
    const inbox = await b.get(target);
    expect(inbox.status).toBe(200);
    const html = await inbox.text();
    expect(html).toContain('Signed in as <strong>erin</strong>');
    expect(html).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/); // no JWT anywhere on the page
    expect(app.events.some((e) => e.type === 'session.sign_in' && e.userId === 'erin' && e.decision === 'allow')).toBe(true);
  });

  it('a return target outside the pages is ignored (no open redirect)', async () => {
    const b = new Browser(app.origin);
    for (const evil of ['https://evil.example/', '//evil.example/x', `${BASE}/../x`, '/elsewhere']) {
      const target = await b.signIn(app.idp, 'erin', evil);
      expect(target).toBe(`${BASE}/approvals`);
    }
  });

  it('session fixation: sign-in always issues a new session id and ends the one the browser had', async () => {
    const b = new Browser(app.origin);
    await b.signIn(app.idp, 'erin');
    const before = b.cookies.get('agent-iam-session') as string;
    await b.signIn(app.idp, 'frank');
    const after = b.cookies.get('agent-iam-session') as string;
    expect(after).not.toBe(before);
    const replay = new Browser(app.origin);
    replay.cookies.set('agent-iam-session', before);
    expect((await replay.get(`${BASE}/approvals`)).status).toBe(303); // the old session is gone
    // a forged or altered cookie is no session
    replay.cookies.set('agent-iam-session', `${after.slice(0, -2)}AA`);
    expect((await replay.get(`${BASE}/approvals`)).status).toBe(303);
  });

  it('sign-out needs the CSRF token and invalidates the session server-side', async () => {
    const b = new Browser(app.origin);
    await b.signIn(app.idp, 'erin');
    const cookie = b.cookies.get('agent-iam-session') as string;
    const csrf = csrfOf(await (await b.get(`${BASE}/approvals`)).text());
    expect((await b.post(`${BASE}/sign-out`, {})).status).toBe(403);
    const out = await b.post(`${BASE}/sign-out`, { csrf });
    expect(out.status).toBe(303);
    expect(out.headers.get('location')).toBe(`${BASE}/signed-out`);
    expect(b.cookies.has('agent-iam-session')).toBe(false);
    const replay = new Browser(app.origin);
    replay.cookies.set('agent-iam-session', cookie);
    expect((await replay.get(`${BASE}/approvals`)).status).toBe(303);
  });

  it('sessions expire (idle and absolute)', async () => {
    const b = new Browser(app.origin);
    await b.signIn(app.idp, 'erin');
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    try {
      vi.setSystemTime(Date.now() + 30 * 60_000);
      expect((await b.get(`${BASE}/approvals`)).status).toBe(200);
      vi.setSystemTime(Date.now() + 61 * 60_000); // idle for longer than an hour
      expect((await b.get(`${BASE}/approvals`)).status).toBe(303);
    } finally {
      vi.useRealTimers();
    }
  });

  it('every page: strict CSP, no script, no framing, Referrer-Policy, nosniff, no-store; the stylesheet is external', async () => {
    const b = new Browser(app.origin);
    await b.signIn(app.idp, 'erin');
    for (const path of [`${BASE}/approvals`, `${BASE}/accounts`, `${BASE}/approvals/apr_unknown`, `${BASE}/sign-in`]) {
      const res = await b.get(path);
      expect(res.headers.get('content-security-policy'), path).toBe(CSP);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('referrer-policy')).toBe('same-origin');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('cache-control')).toBe('no-store');
      const html = await res.text();
      expect(html).not.toMatch(/<script|\son[a-z]+=|style=/i);
    }
    const css = await b.get(`${BASE}/assets/pages.css`);
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect(css.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('XSS: hostile summaries, paths and ids are escaped; bidi and zero-width characters are shown as U+XXXX', async () => {
    const hostile = '<script>alert(1)</script><a href="javascript:alert(1)">click</a><img src=x onerror=alert(1)> refund \u202Egnp.exe\u200B ok\u2066x\u2069 \uFEFF';
    const id = await refundApproval(app, { description: hostile, path: '/v1/refunds/"><svg onload=alert(1)>', agentId: 'agent"><script>x</script>', userId: 'alice<b>' });
    const b = new Browser(app.origin);
    await b.signIn(app.idp, 'erin');
    for (const path of [`${BASE}/approvals`, `${BASE}/approvals/${id}`]) {
      const html = await (await b.get(path)).text();
      expect(html).not.toContain('<script>');
      expect(html).not.toMatch(/<a[^>]+href="javascript:/i);
      expect(html).not.toMatch(/<img|<svg|<b>/i);
      expect(html).not.toMatch(/[\u202E\u200B\u2066\u2069\uFEFF]/);
      expect(html).toContain('&#60;script&#62;alert(1)&#60;/script&#62;');
      for (const cp of ['U+202E', 'U+200B', 'U+2066', 'U+2069', 'U+FEFF']) expect(html, cp).toContain(cp);
    }
  });

  it('the inbox shows what is bound, never the query, the body or credentials', async () => {
    const id = await refundApproval(app, { description: 'Refund order 1234' });
    const b = new Browser(app.origin);
    await b.signIn(app.idp, 'erin');
    const inbox = await (await b.get(`${BASE}/approvals`)).text();
    expect(inbox).toContain(`${BASE}/approvals/${id}`);
    expect(inbox).toContain('Refund order 1234');
    const detail = await (await b.get(`${BASE}/approvals/${id}`)).text();
    for (const s of ['refund-agent', 'alice', 'payments', 'POST', '127.0.0.1:1', '/v1/refunds/']) expect(detail).toContain(s);
    expect(detail).not.toContain('4242424242424242');
    expect(detail).not.toContain('card=');
    expect(detail).not.toContain('sk_test');
  });

  it('a person who may not decide an approval cannot see it, nor decide it by posting its id', async () => {
    const id = await refundApproval(app);
    const dave = new Browser(app.origin);
    await dave.signIn(app.idp, 'dave'); // engineering, not finance
    const inbox = await (await dave.get(`${BASE}/approvals`)).text();
    expect(inbox).not.toContain(id);
    expect((await dave.get(`${BASE}/approvals/${id}`)).status).toBe(404);
    const csrf = csrfOf(inbox);
    expect((await dave.post(`${BASE}/approvals/${id}/approve`, { csrf, ttlSeconds: '' })).status).toBe(404);
    expect((await dave.post(`${BASE}/approvals/${id}/deny`, { csrf, reason: 'x' })).status).toBe(404);
    // the requester herself (not in finance) neither
    const alice = new Browser(app.origin);
    await alice.signIn(app.idp, 'alice');
    expect((await alice.get(`${BASE}/approvals/${id}`)).status).toBe(404);
    expect((await app.approvals.get(id))?.status).toBe('pending');
  });

  it('CSRF: a cross-origin form, a missing Origin, a missing or foreign token are refused; nothing is decided', async () => {
    const id = await refundApproval(app);
    const erin = new Browser(app.origin);
    await erin.signIn(app.idp, 'erin');
    const csrf = csrfOf(await (await erin.get(`${BASE}/approvals/${id}`)).text());
    const frank = new Browser(app.origin);
    await frank.signIn(app.idp, 'frank');
    const frankCsrf = csrfOf(await (await frank.get(`${BASE}/approvals/${id}`)).text());
    const attempts: Array<[Record<string, string>, Record<string, string>]> = [
      [{ csrf, ttlSeconds: '' }, { origin: 'https://evil.example' }],
      [{ csrf, ttlSeconds: '' }, { origin: 'null' }],
      [{ csrf, ttlSeconds: '' }, {}],
      [{ csrf, ttlSeconds: '' }, { 'sec-fetch-site': 'cross-site' }],
      [{ ttlSeconds: '' }, { origin: app.origin }],
      [{ csrf: frankCsrf, ttlSeconds: '' }, { origin: app.origin }],
      [{ csrf: `${csrf}x`, ttlSeconds: '' }, { origin: app.origin }],
    ];
    for (const [form, headers] of attempts) {
      const res = await erin.post(`${BASE}/approvals/${id}/approve`, form, headers);
      expect(res.status, JSON.stringify([form, headers])).toBe(403);
    }
    expect((await app.approvals.get(id))?.status).toBe('pending');
    const ok = await erin.post(`${BASE}/approvals/${id}/approve`, { csrf, ttlSeconds: '' });
    expect(ok.status).toBe(303);
    expect((await app.approvals.get(id))?.status).toBe('approved');
  });

  it('approve with a TTL, deny with a reason; decided approvals are read-only', async () => {
    const a = await refundApproval(app);
    const d = await refundApproval(app);
    const b = new Browser(app.origin);
    await b.signIn(app.idp, 'erin');
    let csrf = csrfOf(await (await b.get(`${BASE}/approvals/${a}`)).text());
    const bad = await b.post(`${BASE}/approvals/${a}/approve`, { csrf, ttlSeconds: '999999' });
    expect(bad.status).toBe(400);
    const res = await b.post(`${BASE}/approvals/${a}/approve`, { csrf, ttlSeconds: '300' });
    expect(res.headers.get('location')).toBe(`${BASE}/approvals/${a}?done=approved`);
    const rec = await app.approvals.get(a);
    expect(rec).toMatchObject({ status: 'approved', approver: 'erin' });
    expect(rec?.expiresAt).toBeLessThanOrEqual(Date.now() + 300_000);
    csrf = csrfOf(await (await b.get(`${BASE}/approvals/${d}`)).text());
    await b.post(`${BASE}/approvals/${d}/deny`, { csrf, reason: 'Not for this customer' });
    expect(await app.approvals.get(d)).toMatchObject({ status: 'denied', approver: 'erin', reason: 'Not for this customer' });
    const page = await (await b.get(`${BASE}/approvals/${d}?done=denied`)).text();
    expect(page).toContain('Not for this customer');
    expect(page).not.toContain('<form method="post" class="decide"');
    const again = await b.post(`${BASE}/approvals/${d}/approve`, { csrf, ttlSeconds: '' });
    expect(again.status).toBe(400);
    const inbox = await (await b.get(`${BASE}/approvals`)).text();
    expect(inbox).toMatch(/Decided[\s\S]*status-denied/);
  });

  it('connected accounts: connect through the consent flow, see status and scopes, disconnect revokes at the provider and deletes', async () => {
    const b = new Browser(app.origin);
    await b.signIn(app.idp, 'erin', `${BASE}/accounts`);
    let html = await (await b.get(`${BASE}/accounts`)).text();
    expect(html).toContain('not connected');
    const csrf = csrfOf(html);
    const go = await b.post(`${BASE}/accounts/corp/connect`, { csrf });
    expect(go.status).toBe(200);
    const page = await go.text();
    const url = /content="0;url=([^"]+)"/.exec(page)?.[1]?.replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n))) as string;
    expect(new URL(url).origin).toBe(app.idp.issuer);
    const callback = await app.idp.authorize(url, { userId: 'erin' });
    const back = await b.get(callback);
    expect(back.status).toBe(303);
    expect(back.headers.get('location')).toBe(`${BASE}/accounts?done=connected&connection=corp`);
    html = await (await b.get(`${BASE}/accounts?done=connected`)).text();
    expect(html).toContain('status-active');
    expect(html).toContain('<code>openid</code>');
    expect(html).toContain('Account connected.');
    app.idp.resetStats();
    const out = await b.post(`${BASE}/accounts/corp/disconnect`, { csrf: csrfOf(html) });
    expect(out.status).toBe(303);
    expect(app.idp.stats.revocation).toBe(1);
    expect(await app.tokens.listAccounts('erin')).toEqual([]);
    // CSRF and unknown connections
    expect((await b.post(`${BASE}/accounts/corp/connect`, { csrf: 'nope' })).status).toBe(403);
    expect((await b.post(`${BASE}/accounts/nope/disconnect`, { csrf: csrfOf(html) })).status).toBe(404);
  });
});

describe('pages options', () => {
  it('are validated at construction', async () => {
    const { createPages } = await import('../../src/index.js');
    const { createApprovals } = await import('../../src/index.js');
    const approvals = createApprovals();
    const base = { publicOrigin: 'https://agent.example.com', approvals, secret: 'x'.repeat(32), authenticate: () => undefined };
    expect(() => createPages(base)).not.toThrow();
    expect(() => createPages({ ...base, secret: 'short' })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(() => createPages({ ...base, publicOrigin: 'http://agent.example.com' })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(() => createPages({ ...base, publicOrigin: 'https://agent.example.com/path' })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    const { authenticate: _a, ...noAuth } = base;
    expect(() => createPages(noAuth)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'pages.signIn' }));
  });
});

describe('pages with the author’s own session (authenticate hook)', () => {
  let app: PagesApp;
  beforeAll(async () => {
    // stands for the app's own session middleware: here a header the test sets
    app = await startPagesApp('express', {
      signIn: undefined,
      authenticate: (r) => {
        const user = r.header('x-test-user');
        return user === undefined ? undefined : { userId: user, scopes: [], groups: user === 'erin' || user === 'frank' ? ['finance'] : [] };
      },
    });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('uses the hook’s user; anti-CSRF tokens are bound to a cookie of the pages and to that user; no sign-in routes', async () => {
    const id = await refundApproval(app);
    const b = new Browser(app.origin);
    expect((await b.get(`${BASE}/approvals`)).status).toBe(401);
    expect((await b.get(`${BASE}/sign-in`)).status).toBe(404);
    const page = await b.get(`${BASE}/approvals/${id}`, { 'x-test-user': 'erin' });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).not.toContain('Sign out');
    expect(b.cookies.has('agent-iam-csrf')).toBe(true);
    const csrf = csrfOf(html);
    // the same token from another user, or without the pages' cookie, is refused
    expect((await b.post(`${BASE}/approvals/${id}/approve`, { csrf, ttlSeconds: '' }, { origin: app.origin, 'x-test-user': 'frank' })).status).toBe(403);
    const stranger = new Browser(app.origin);
    expect((await stranger.post(`${BASE}/approvals/${id}/approve`, { csrf, ttlSeconds: '' }, { origin: app.origin, 'x-test-user': 'erin' })).status).toBe(403);
    expect((await b.post(`${BASE}/approvals/${id}/approve`, { csrf, ttlSeconds: '' }, { origin: app.origin, 'x-test-user': 'erin' })).status).toBe(303);
    expect((await app.approvals.get(id))?.status).toBe('approved');
  });
});
