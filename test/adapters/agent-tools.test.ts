/**
 * The framework-free core of the adapters: sessions (ids only, the raw token never kept), the
 * consent pause after a step-up (the scopes asked for), one consent request per account while it
 * is fresh, and refusals that carry no secret.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAgentToolsCore } from '../../src/adapters/agent-tools.js';
import { rawTokenOf } from '../../src/context.js';
import { storeKey } from '../../src/stores/store.js';
import { expectNoSecrets, startHarness, type Harness } from './frameworks/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());
beforeEach(() => h.api.clear());

describe('agent tools core', () => {
  it('a session keeps the verified identity by id, never the token; restoring gives it back frozen', async () => {
    const core = createAgentToolsCore(h.iam, { store: h.store });
    const alice = await h.contextOf('alice');
    expect(rawTokenOf(alice)).toBeTypeOf('string');
    const id = await core.session(alice);
    expect(id).toMatch(/^ags_[A-Za-z0-9_-]{22}$/);
    const restored = await createAgentToolsCore(h.newIam(), { store: h.store }).restore(id);
    expect(restored).toMatchObject({ userId: 'alice', subject: alice.subject, issuer: alice.issuer, scopes: alice.scopes, requestId: alice.requestId, authenticated: true });
    expect(Object.isFrozen(restored)).toBe(true);
    expect(rawTokenOf(restored)).toBeUndefined();
    const stored = await h.store.get(storeKey('agent-session', id));
    expect(stored).toMatchObject({ userId: 'alice' });
    expectNoSecrets(h, JSON.stringify({ id, stored }));
    await expect(core.session(undefined)).rejects.toMatchObject({ code: 'REQUEST_INVALID' });
    await expect(core.restore('ags_not-a-real-session-id')).rejects.toMatchObject({ code: 'REQUEST_INVALID', field: 'agentIamSession' });
  });

  it('a step-up becomes a consent pause with the scopes to consent to; parallel calls share it', async () => {
    const core = createAgentToolsCore(h.iam, { store: h.store });
    const hank = await h.contextOf('hank');
    const notes = { request: () => ({ url: `${h.api.origin}/notes/admin` }) };
    const first = await core.run(notes, {}, hank, 'notes');
    if (first.kind !== 'consent') throw new Error('consent expected');
    await h.connect(h.iam, first.pause.url!, 'hank');
    h.api.route('/notes/admin', (_req, res) => {
      res.writeHead(403, { 'www-authenticate': 'Bearer error="insufficient_scope", scope="notes:admin"' });
      res.end();
    });
    const [a, b] = await Promise.all([core.run(notes, {}, hank, 'notes'), core.run(notes, {}, hank, 'notes')]);
    expect(a).toMatchObject({ kind: 'consent', pause: { type: 'agent-iam.consent', connection: 'notes', userId: 'hank', toolName: 'notes' } });
    if (a.kind !== 'consent' || b.kind !== 'consent') throw new Error('consent expected');
    expect(a.pause.scopes).toEqual(expect.arrayContaining(['notes:admin', 'openid']));
    expect(a.pause.text).toContain('notes:admin');
    expect(b.pause.consentId).toBe(a.pause.consentId);
    expect(b.pause.url).toBe(a.pause.url);
    const refusal = core.refusal(a);
    expect(refusal).toMatchObject({ status: 'consent_required', consent: { connection: 'notes' } });
    expectNoSecrets(h, JSON.stringify(refusal));
  });

  it('connectUrl replaces the authorization URL in the pause', async () => {
    const core = createAgentToolsCore(h.iam, { store: h.store, connectUrl: (c) => `https://agent.example/oauth/connect/${c.connection}` });
    const out = await core.run({ request: () => ({ url: `${h.api.origin}/notes` }) }, {}, await h.contextOf('ivy'), 'notes');
    expect(out).toMatchObject({ kind: 'consent', pause: { url: 'https://agent.example/oauth/connect/notes' } });
  });

  it('refuses a toolFetch it cannot preflight, and options it does not know', () => {
    expect(() => createAgentToolsCore({ toolFetch: fetch as never })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'toolFetch' }));
    expect(() => createAgentToolsCore(h.iam, { sesionTtlSeconds: 5 } as never)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});
