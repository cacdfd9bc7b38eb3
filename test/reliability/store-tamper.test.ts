/**
 * Tampered store records, reached through toolFetch and the token manager: a flipped ciphertext
 * byte, an unknown key id, a record copied from another user, a plain record, truncated JSON,
 * garbage, and a tampered pending OAuth state. Each is a typed STORE_UNAVAILABLE (or a state
 * mismatch) for that user only, nothing is sent, no secret is echoed, other users keep working and
 * the process sees no unhandled rejection or exception.
 */
import Keyv from 'keyv';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenManager, createToolFetch, generateEncryptionKey, isAgentIamError, storeKey, type AgentContext, type TokenManager, type ToolFetch } from '../../src/index.js';

const KEYS: Record<string, string> = { alice: 'kaggle_AliceSecretKey_0001', bob: 'kaggle_BobSecretKey_0002' };
const ENCRYPTION_KEY = generateEncryptionKey();

let server: Server;
let received = 0;
let origin = '';
const unhandled: unknown[] = [];
const onUnhandled = (e: unknown): void => void unhandled.push(e);

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  process.on('uncaughtException', onUnhandled);
  server = createServer((req, res) => {
    received++;
    req.resume();
    res.writeHead(200).end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  process.off('uncaughtException', onUnhandled);
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

function ctx(userId: string): AgentContext {
  return { userId, subject: userId, issuer: 'https://inbound.test', scopes: [], claims: {}, actorChain: [], requestId: 'r', authenticated: true };
}

interface Setup {
  map: Map<string, unknown>;
  tokens: TokenManager;
  toolFetch: ToolFetch;
  /** The raw (Keyv-serialised) entry of a store key. */
  rawKey(...parts: string[]): string;
}

async function setup(): Promise<Setup> {
  const map = new Map<string, unknown>();
  const tokens = createTokenManager({
    store: new Keyv({ store: map }),
    encryptionKey: ENCRYPTION_KEY,
    cacheSize: 0,
    connections: [
      { id: 'kaggle', kind: 'apiKey' },
      // explicit endpoints on a port nothing listens on: authorization URLs are built locally
      { id: 'corp', authorizationEndpoint: 'http://127.0.0.1:9/authorize', tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'c', clientSecret: 'client-secret-0123456789', redirectUri: 'http://127.0.0.1:9/cb' },
    ],
  });
  for (const [userId, key] of Object.entries(KEYS)) await tokens.setApiKey({ connection: 'kaggle', userId, key });
  const toolFetch = createToolFetch({
    agent: { id: 'agent' },
    tools: [{ name: 'kaggle', baseUrl: `${origin}/kaggle`, auth: { type: 'oauth2', connection: 'kaggle' } }],
    policies: [{ agent: 'agent', tool: 'kaggle' }],
    tokens,
  });
  return { map, tokens, toolFetch, rawKey: (...parts) => `keyv:${storeKey(...parts)}` };
}

type Edit = (entry: { value: Record<string, unknown> }, s: Setup) => unknown;

/** Apply an edit to alice's raw account entry (a Keyv JSON string). */
function tamper(s: Setup, edit: Edit | string): void {
  const k = s.rawKey('account', 'kaggle', 'user', 'alice');
  const raw = s.map.get(k);
  expect(typeof raw).toBe('string');
  if (typeof edit === 'string') {
    s.map.set(k, edit);
    return;
  }
  const entry = JSON.parse(raw as string) as { value: Record<string, unknown> };
  const out = edit(entry, s);
  s.map.set(k, JSON.stringify(out ?? entry));
}

const flip = (b64: string, at: number): string => {
  const c = b64[at] === 'A' ? 'B' : 'A';
  return b64.slice(0, at) + c + b64.slice(at + 1);
};

const CASES: Array<[string, Edit]> = [
  ['flipped ciphertext byte', (e) => void (e.value.ct = flip(e.value.ct as string, 5))],
  ['flipped tag byte', (e) => void (e.value.ct = flip(e.value.ct as string, (e.value.ct as string).length - 3))],
  ['flipped iv byte', (e) => void (e.value.iv = flip(e.value.iv as string, 2))],
  ['unknown key id', (e) => void (e.value.kid = 'not-a-key-we-have')],
  ["bob's record copied over alice's", (e, s) => ({ ...e, value: (JSON.parse(s.map.get(s.rawKey('account', 'kaggle', 'user', 'bob')) as string) as { value: unknown }).value })],
  ['plain (unencrypted) record', (e) => ({ ...e, value: { v: 1, connection: 'kaggle', ownerType: 'user', ownerId: 'alice', kind: 'apiKey', status: 'active', scopes: [], accessToken: 'attacker-key', generation: 99, createdAt: 0, updatedAt: 0 } })],
  ['wrong shape', (e) => ({ ...e, value: [1, 2, 3] })],
  ['number', (e) => ({ ...e, value: 42 })],
];
const RAW_CASES: Array<[string, (raw: string) => string]> = [
  ['truncated JSON', (raw) => raw.slice(0, Math.floor(raw.length / 2))],
  ['garbage', () => '\u0000\u00ff not json at all'],
  ['empty string', () => ''],
];

async function expectTypedFailure(s: Setup, label: string): Promise<void> {
  received = 0;
  const viaFetch = await s.toolFetch(`${origin}/kaggle/data`, { context: ctx('alice') }).then(
    () => undefined,
    (e: unknown) => e,
  );
  const direct = await s.tokens.getAccessToken({ connection: 'kaggle', userId: 'alice' }).then(
    () => undefined,
    (e: unknown) => e,
  );
  for (const err of [viaFetch, direct]) {
    expect(isAgentIamError(err), label).toBe(true);
    expect((err as { code: string }).code, label).toBe('STORE_UNAVAILABLE');
    const printed = [String(err), JSON.stringify(err), (err as Error).stack ?? ''].join('\n');
    for (const secret of [...Object.values(KEYS), ENCRYPTION_KEY, 'attacker-key']) expect(printed, label).not.toContain(secret);
  }
  expect(received, `${label}: nothing sent`).toBe(0);
  await expect(s.tokens.getAccount({ connection: 'kaggle', userId: 'alice' }), label).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
  // bob is untouched
  const res = await s.toolFetch(`${origin}/kaggle/data`, { context: ctx('bob') });
  expect(res.status, label).toBe(200);
  await res.arrayBuffer();
}

describe('tampered store records', () => {
  it.each(CASES)('%s: typed STORE_UNAVAILABLE for that user only, nothing sent, nothing echoed', async (label, edit) => {
    const s = await setup();
    tamper(s, edit);
    await expectTypedFailure(s, label);
    // the owner can overwrite the damaged record with a fresh key
    await s.tokens.setApiKey({ connection: 'kaggle', userId: 'alice', key: 'kaggle_AliceNewKey_0003' }).catch(() => undefined);
  });

  it.each(RAW_CASES)('%s: typed STORE_UNAVAILABLE, the process stays up', async (label, edit) => {
    const s = await setup();
    const k = s.rawKey('account', 'kaggle', 'user', 'alice');
    tamper(s, edit(s.map.get(k) as string));
    await expectTypedFailure(s, label);
  });

  it('a tampered account index and a tampered pending OAuth state are typed errors too', async () => {
    const s = await setup();
    const idx = s.rawKey('account-index', 'user', 'alice');
    s.map.set(idx, (s.map.get(idx) as string).slice(0, 20));
    await expect(s.tokens.listAccounts('alice')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect((await s.tokens.listAccounts('bob')).map((a) => a.connection)).toEqual(['kaggle']);

    const { state } = await s.tokens.startAuthorization({ connection: 'corp', userId: 'alice' });
    const stateKeys = [...s.map.keys()].filter((k) => k.includes(':state:') || k.includes('state'));
    expect(stateKeys.length).toBeGreaterThan(0);
    for (const k of stateKeys) {
      const e = JSON.parse(s.map.get(k) as string) as { value: Record<string, unknown> };
      e.value.ct = flip(e.value.ct as string, 4);
      s.map.set(k, JSON.stringify(e));
    }
    const err = await s.tokens.completeAuthorization(`http://127.0.0.1:9/cb?code=authcode-secret-0123456789&state=${state}`).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isAgentIamError(err)).toBe(true);
    expect(['STORE_UNAVAILABLE', 'OAUTH_STATE_MISMATCH']).toContain((err as { code: string }).code);
    expect(JSON.stringify(err) + String(err)).not.toContain('authcode-secret-0123456789');
  });

  it("a record moved to another owner's, owner type's or connection's key, or a pending state moved to another state, does not decrypt", async () => {
    const s = await setup();
    const alice = s.map.get(s.rawKey('account', 'kaggle', 'user', 'alice')) as string;
    // to an organisation with the same id, and to another connection of the same user
    s.map.set(s.rawKey('account', 'kaggle', 'org', 'alice'), alice);
    s.map.set(s.rawKey('account', 'corp', 'user', 'alice'), alice);
    await expect(s.tokens.getAccessToken({ connection: 'kaggle', orgId: 'alice' })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await expect(s.tokens.getAccessToken({ connection: 'corp', userId: 'alice' })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    // alice's own account is untouched
    expect((await s.tokens.getAccessToken({ connection: 'kaggle', userId: 'alice' })).accessToken).toBe(KEYS.alice);

    // Mallory replaces the pending state of her own flow with alice's (user id and PKCE verifier):
    // her callback must not complete as alice's flow.
    const before = new Set(s.map.keys());
    await s.tokens.startAuthorization({ connection: 'corp', userId: 'alice' });
    const aliceState = [...s.map.keys()].find((k) => !before.has(k) && k.includes('state')) as string;
    const { state: malloryState } = await s.tokens.startAuthorization({ connection: 'corp', userId: 'mallory' });
    const malloryKey = [...s.map.keys()].find((k) => k !== aliceState && !before.has(k) && k.includes('state')) as string;
    expect(aliceState).toBeDefined();
    expect(malloryKey).toBeDefined();
    s.map.set(malloryKey, s.map.get(aliceState));
    const err = await s.tokens.completeAuthorization(`http://127.0.0.1:9/cb?code=authcode-secret-0123456789&state=${malloryState}`, { expectedUserId: 'mallory' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as { code?: string }).code).toBe('STORE_UNAVAILABLE'); // refused at decryption, before any token request
    expect(JSON.stringify(err) + String(err)).not.toContain('authcode-secret-0123456789');
  });

  it('no unhandled rejection or uncaught exception happened', async () => {
    await new Promise((r) => setTimeout(r, 50));
    expect(unhandled).toEqual([]);
  });
});
