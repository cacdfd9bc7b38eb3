/**
 * The pages in a real browser (issue 15, item 7): Debian's chromium driven by playwright-core
 * against a real Express app and the test identity provider. Sign in, see an approval appear,
 * approve it and watch the waiting agent call go through exactly once, deny one, connect and
 * disconnect an account (the provider's revocation endpoint is called), CSRF, XSS, CSP and session
 * checks, and keyboard-only use of the inbox. Screenshots for the README go to docs/images/ with UPDATE_SCREENSHOTS=1.
 *
 * Skipped, with a message, only when chromium is absent (CI installs it: .ci/run).
 */
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser as PwBrowser, BrowserContext, Page } from 'playwright-core';
import { BASE, startPagesApp, type PagesApp } from '../pages/harness.js';
import { userContext } from '../outbound/helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const present = existsSync(CHROMIUM);
if (!present) console.warn(`[browser tests] skipped: no chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`);
// The README's screenshots are rewritten only on request (`UPDATE_SCREENSHOTS=1 npx vitest run
// test/browser`), so that a test run leaves the work tree as it found it; otherwise they go to a
// temporary folder, still taken (a page that cannot be drawn fails here too).
const IMAGES = process.env.UPDATE_SCREENSHOTS === '1' ? fileURLToPath(new URL('../../docs/images/', import.meta.url)) : `${mkdtempSync(join(tmpdir(), 'agent-iam-shots-'))}/`;

describe.skipIf(!present)('the pages in chromium', () => {
  let app: PagesApp;
  let browser: PwBrowser;
  let context: BrowserContext;
  let page: Page;
  let evil: Server;
  let evilOrigin = '';
  let evilHtml = '';

  beforeAll(async () => {
    mkdirSync(IMAGES, { recursive: true });
    app = await startPagesApp('express');
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
    page = await context.newPage();
    page.on('dialog', (d) => {
      throw new Error(`a dialog opened: ${d.message()}`);
    });
    // An attacker's page on another origin (same site: 127.0.0.1, so SameSite=Lax cookies go along).
    evil = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(evilHtml);
    });
    await new Promise<void>((ok) => evil.listen(0, '127.0.0.1', ok));
    evilOrigin = `http://127.0.0.1:${(evil.address() as AddressInfo).port}`;
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    evil?.closeAllConnections();
    await new Promise((ok) => (evil ? evil.close(ok) : ok(undefined)));
    await app?.close();
  });

  /** The identity provider's login and consent forms, filled in as a person would. */
  async function passIdp(userId: string): Promise<void> {
    for (let i = 0; i < 4 && page.url().startsWith(app.idp.issuer); i++) {
      const login = page.locator('input[name="user_id"]');
      if (await login.count()) await login.fill(userId);
      await Promise.all([page.waitForURL((u) => u.href !== page.url() || true), page.getByRole('button', { name: 'Allow' }).click()]);
      await page.waitForLoadState('load');
    }
  }

  const refund = (path: string, wait?: number, description?: string) =>
    app.toolFetch(`${app.tool.origin}${path}`, {
      method: 'POST',
      body: JSON.stringify({ amount: 2000, card: '4242424242424242' }),
      context: userContext('alice'),
      ...(wait !== undefined ? { waitForApproval: wait } : {}),
      ...(description !== undefined ? { approvalDescription: description } : {}),
    });

  it('sign in, see an approval appear, approve it: the waiting agent call goes through exactly once', async () => {
    const waiting = refund('/v1/refunds', 30_000, 'Refund 20 EUR to alice for order 1234 (damaged parcel)');
    await page.goto(`${app.origin}${BASE}/approvals`);
    expect(page.url().startsWith(app.idp.issuer)).toBe(true); // sent to the identity provider
    await passIdp('erin');
    await page.waitForURL(`${app.origin}${BASE}/approvals`);
    expect(page.url()).not.toMatch(/[?&](code|state|token|access_token)=/);
    const cookies = await context.cookies(app.origin);
    const session = cookies.find((c) => c.name === 'agent-iam-session');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Lax' });
    expect(await page.evaluate(() => document.cookie)).toBe(''); // nothing readable by script
    expect(await page.evaluate(() => Object.keys(localStorage).length + Object.keys(sessionStorage).length)).toBe(0);

    await expect.poll(async () => (await page.reload(), await page.locator('tbody tr').count()), { timeout: 10_000 }).toBeGreaterThan(0);
    await expect.poll(() => page.getByText('Refund 20 EUR to alice').count()).toBe(1);
    await page.screenshot({ path: `${IMAGES}approvals-inbox.png`, fullPage: true });

    await page.getByRole('link', { name: /Review/ }).first().click();
    await page.waitForURL(/\/approvals\/apr_/);
    await page.screenshot({ path: `${IMAGES}approval-detail.png`, fullPage: true });
    expect(await page.content()).not.toContain('4242424242424242');
    await page.getByRole('button', { name: 'Approve' }).click();
    await page.waitForURL(/done=approved/);
    const res = await waiting;
    expect(res.status).toBe(200);
    expect(app.tool.calls.filter((c) => c.path === '/v1/refunds')).toHaveLength(1);
    await page.screenshot({ path: `${IMAGES}approval-approved.png`, fullPage: true });
  });

  it('deny one with a reason: the waiting call fails with POLICY_DENIED and nothing is sent', async () => {
    const waiting = refund('/v1/refunds/second', 30_000, 'Refund 900 EUR, no order found').then(
      () => 'sent',
      (e: { code?: string; reason?: string }) => `${e.code}:${e.reason}`,
    );
    await expect.poll(async () => (await page.goto(`${app.origin}${BASE}/approvals`), await page.getByText('Refund 900 EUR').count()), { timeout: 10_000 }).toBe(1);
    await page.getByRole('row', { name: /Refund 900 EUR/ }).getByRole('link', { name: /Review/ }).click();
    await page.getByLabel(/Reason/).fill('No order matches this refund');
    await page.getByRole('button', { name: 'Deny' }).click();
    await page.waitForURL(/done=denied/);
    expect(await waiting).toBe('POLICY_DENIED:approval_denied');
    expect(app.tool.calls.filter((c) => c.path === '/v1/refunds/second')).toHaveLength(0);
    expect(await page.getByRole('button', { name: 'Approve' }).count()).toBe(0); // read-only now
  });

  it('keyboard only: reach an approval with Tab, open it with Enter, approve it with the keyboard', async () => {
    const waiting = refund('/v1/refunds/keyboard', 30_000, 'Keyboard refund');
    await expect.poll(async () => (await page.goto(`${app.origin}${BASE}/approvals`), await page.getByText('Keyboard refund').count()), { timeout: 10_000 }).toBe(1);
    const focusedText = () => page.evaluate(() => (document.activeElement as HTMLElement | null)?.textContent ?? '');
    let found = false;
    for (let i = 0; i < 30 && !found; i++) {
      await page.keyboard.press('Tab');
      found = /Review/.test(await focusedText());
    }
    expect(found).toBe(true);
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement as Element).outlineStyle);
    expect(outline).not.toBe('none'); // a visible focus ring
    await Promise.all([page.waitForURL(/\/approvals\/apr_/), page.keyboard.press('Enter')]);
    found = false;
    for (let i = 0; i < 30 && !found; i++) {
      await page.keyboard.press('Tab');
      found = (await focusedText()).trim() === 'Approve';
    }
    expect(found).toBe(true);
    await Promise.all([page.waitForURL(/done=approved/), page.keyboard.press('Enter')]);
    expect((await waiting).status).toBe(200);
  });

  it('CSRF: a form on another origin posting to the pages is refused, though the browser sends the cookie', async () => {
    const pending = await refund('/v1/refunds/csrf').catch((e: { approvalId?: string }) => e.approvalId as string);
    expect(typeof pending).toBe('string');
    evilHtml = `<form method="post" action="${app.origin}${BASE}/approvals/${pending}/approve"><input name="ttlSeconds" value="28800"><input name="csrf" value="guess"><button>Win a prize</button></form>`;
    await page.goto(evilOrigin);
    const [response] = await Promise.all([page.waitForResponse((r) => r.url().includes('/approve')), page.getByRole('button', { name: 'Win a prize' }).click()]);
    expect(response.status()).toBe(403);
    expect((await app.approvals.get(pending as string))?.status).toBe('pending');
  });

  it('XSS: a hostile summary stays text; bidi and zero-width characters are shown; the CSP stops injected script and framing', async () => {
    const hostile = '<script>alert(1)</script><img src=x onerror=alert(2)><a href="javascript:alert(3)">open</a> invoice\u202Efdp.exe\u200B';
    const id = await refund('/v1/refunds/xss', undefined, hostile).catch((e: { approvalId?: string }) => e.approvalId as string);
    await page.goto(`${app.origin}${BASE}/approvals/${id}`);
    expect(await page.locator('script').count()).toBe(0);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.locator('a[href^="javascript:"]').count()).toBe(0);
    await expect.poll(() => page.getByText('U+202E').count()).toBeGreaterThan(0);
    expect(await page.getByText('<script>alert(1)</script>', { exact: false }).count()).toBeGreaterThan(0);
    await page.screenshot({ path: `${IMAGES}approval-hostile-summary.png`, fullPage: true });
    // an inline script added to the page does not run under the CSP
    await page.addScriptTag({ content: 'window.__injected = 1' }).catch(() => undefined);
    expect(await page.evaluate(() => (window as unknown as { __injected?: number }).__injected)).toBeUndefined();
    // framed by another origin: refused (frame-ancestors 'none')
    evilHtml = `<iframe src="${app.origin}${BASE}/approvals" width="600" height="300"></iframe>`;
    await page.goto(evilOrigin);
    await page.waitForTimeout(300);
    const frame = page.frames().find((f) => f.url().startsWith(app.origin));
    const framed = frame === undefined ? '' : await frame.evaluate(() => document.body?.innerText ?? '').catch(() => '');
    expect(framed).not.toContain('Signed in as');
  });

  it('connected accounts: connect through the consent flow, then disconnect: the provider revokes', async () => {
    await page.goto(`${app.origin}${BASE}/accounts`);
    expect(await page.getByText('not connected').count()).toBe(1);
    await page.getByRole('button', { name: /Connect/ }).click();
    await page.waitForURL((u) => u.href.startsWith(app.idp.issuer));
    await passIdp('erin');
    await page.waitForURL(/\/accounts\?done=connected/);
    expect(await page.locator('.status-active').count()).toBe(1);
    await page.screenshot({ path: `${IMAGES}connected-accounts.png`, fullPage: true });
    app.idp.resetStats();
    await page.getByRole('button', { name: /Disconnect/ }).click();
    await page.waitForURL(/done=disconnected/);
    expect(app.idp.stats.revocation).toBe(1);
    expect(await page.getByText('not connected').count()).toBe(1);
    expect(await app.tokens.listAccounts('erin')).toEqual([]);
  });

  it('sign-out ends the session server-side: the old cookie no longer works', async () => {
    const before = (await context.cookies(app.origin)).find((c) => c.name === 'agent-iam-session');
    await page.goto(`${app.origin}${BASE}/approvals`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${app.origin}${BASE}/signed-out`);
    expect((await context.cookies(app.origin)).some((c) => c.name === 'agent-iam-session')).toBe(false);
    const res = await fetch(`${app.origin}${BASE}/approvals`, { headers: { cookie: `agent-iam-session=${before?.value}` }, redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toContain('/sign-in');
  });
});
