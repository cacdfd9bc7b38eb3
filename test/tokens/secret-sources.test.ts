// Secrets from a secret manager (issue 14, item 7): a tool's API key from a Vault-like server, a
// connection's client secret from an AWS Secrets Manager-like server, encryption keys from a loader.
// Both managers are loopback mocks of the real HTTP APIs (Vault KV v2 `GET /v1/secret/data/<path>`
// with X-Vault-Token; Secrets Manager `POST /` with X-Amz-Target: secretsmanager.GetSecretValue);
// the authorization server is the real test identity provider.
import { createServer, type Server } from 'node:http';
import { inspect } from 'node:util';
import Keyv from 'keyv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { anonymousContext, createTokenManager, createToolFetch, generateEncryptionKey } from '../../src/index.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';
import { expectCode } from './helpers.js';

const listen = (s: Server) => new Promise<string>((ok) => s.listen(0, '127.0.0.1', () => ok(`http://127.0.0.1:${(s.address() as { port: number }).port}`)));

let idp: TestIdentityProvider;
let vaultUrl = '';
let smUrl = '';
let toolUrl = '';
const vault = { key: 'sk_live_v1', reads: 0, down: false };
const sm = { secret: '', reads: 0 };
let toolAccepts = 'sk_live_v1';
const toolSeen: string[] = [];
const servers: Server[] = [];

beforeAll(async () => {
  idp = await createTestIdentityProvider();
  const v = createServer((req, res) => {
    vault.reads++;
    if (vault.down || req.headers['x-vault-token'] !== 'root-token' || req.url !== '/v1/secret/data/stripe') {
      res.writeHead(vault.down ? 503 : 403).end(JSON.stringify({ errors: ['permission denied: token=root-token'] }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: { data: { key: vault.key }, metadata: { version: 1 } } }));
  });
  const s = createServer((req, res) => {
    sm.reads++;
    if (req.headers['x-amz-target'] !== 'secretsmanager.GetSecretValue') return void res.writeHead(400).end('{}');
    res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' }).end(JSON.stringify({ Name: 'prod/agent', SecretString: sm.secret }));
  });
  const t = createServer((req, res) => {
    toolSeen.push(String(req.headers.authorization));
    res.writeHead(req.headers.authorization === `Bearer ${toolAccepts}` ? 200 : 401, { 'content-type': 'application/json' }).end('{}');
  });
  servers.push(v, s, t);
  [vaultUrl, smUrl, toolUrl] = await Promise.all([listen(v), listen(s), listen(t)]);
});
afterAll(async () => {
  for (const s of servers) s.close();
  await idp?.close();
});

/** A Vault KV v2 read, as an app would write it. */
const fromVault = async (): Promise<string> => {
  const res = await fetch(`${vaultUrl}/v1/secret/data/stripe`, { headers: { 'x-vault-token': 'root-token' } });
  if (!res.ok) throw new Error(`vault answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { data: { data: { key: string } } }).data.data.key;
};
/** A Secrets Manager GetSecretValue, as the AWS SDK sends it. */
const fromSecretsManager = async (): Promise<string> => {
  const res = await fetch(smUrl, { method: 'POST', headers: { 'x-amz-target': 'secretsmanager.GetSecretValue', 'content-type': 'application/x-amz-json-1.1' }, body: JSON.stringify({ SecretId: 'prod/agent' }) });
  return ((await res.json()) as { SecretString: string }).SecretString;
};

function toolFetchWith(key: Parameters<typeof createToolFetch>[0]['tools'][number]['auth']) {
  return createToolFetch({ agent: { id: 'a' }, tools: [{ name: 'stripe', baseUrl: toolUrl, auth: key }], policies: [{ agent: 'a', tool: 'stripe' }] });
}

describe('secret sources', () => {
  it('a tool API key from Vault: loaded once, cached for its TTL, loaded again after the tool refuses a rotated key', async () => {
    vault.reads = 0;
    const toolFetch = toolFetchWith({ type: 'apiKey', key: { load: fromVault, ttlSeconds: 3600 } });
    expect((await toolFetch(`${toolUrl}/v1/charges`)).status).toBe(200);
    expect((await toolFetch(`${toolUrl}/v1/charges`)).status).toBe(200);
    expect(vault.reads).toBe(1);
    // Rotation at Vault and at the tool: the cached key gets one 401, the next call loads the new one.
    vault.key = 'sk_live_v2';
    toolAccepts = 'sk_live_v2';
    expect((await toolFetch(`${toolUrl}/v1/charges`)).status).toBe(401);
    expect((await toolFetch(`${toolUrl}/v1/charges`)).status).toBe(200);
    expect(vault.reads).toBe(2);
    expect(toolSeen.slice(-2)).toEqual(['Bearer sk_live_v1', 'Bearer sk_live_v2']);
  });

  it('a failing or missing source is a typed error at call time: nothing is sent, nothing leaks, the process lives', async () => {
    vault.down = true;
    const before = toolSeen.length;
    try {
      const e = await expectCode(toolFetchWith({ type: 'apiKey', key: fromVault })(`${toolUrl}/v1/charges`), 'TOKEN_ENDPOINT_UNAVAILABLE');
      expect(e.reason).toBe('secret_unavailable');
      for (const form of [e.message, JSON.stringify(e), inspect(e)]) expect(form).not.toContain('root-token');
    } finally {
      vault.down = false;
    }
    delete process.env.AGENT_IAM_TEST_STRIPE_KEY;
    const env = toolFetchWith({ type: 'apiKey', key: { env: 'AGENT_IAM_TEST_STRIPE_KEY' } });
    expect((await expectCode(env(`${toolUrl}/v1/charges`), 'TOKEN_ENDPOINT_UNAVAILABLE')).reason).toBe('secret_unavailable');
    expect(toolSeen.length).toBe(before);
    process.env.AGENT_IAM_TEST_STRIPE_KEY = toolAccepts;
    expect((await env(`${toolUrl}/v1/charges`)).status).toBe(200);
    delete process.env.AGENT_IAM_TEST_STRIPE_KEY;
    // A loader that answers something that cannot be a header value is never sent.
    await expectCode(toolFetchWith({ type: 'apiKey', key: async () => 'line\r\nX-Injected: 1' })(`${toolUrl}/v1/charges`), 'TOKEN_ENDPOINT_UNAVAILABLE');
    // Bad shapes are refused at construction.
    await expectCode(() => toolFetchWith({ type: 'apiKey', key: { env: 'not a name' } }), 'CONFIG_INVALID');
    await expectCode(() => toolFetchWith({ type: 'apiKey', key: { vault: 'x' } as never }), 'CONFIG_INVALID');
  });

  it('a client secret from Secrets Manager: used at the token endpoint, and read again when the server answers invalid_client (rotated)', async () => {
    const reg = await idp.registerClient({ grant_types: ['client_credentials'] });
    sm.secret = reg.client_secret as string;
    sm.reads = 0;
    const tokens = createTokenManager({ retries: 0, connections: [{ id: 'svc', issuer: idp.issuer, clientId: reg.client_id, clientSecret: { load: fromSecretsManager, ttlSeconds: 3600 } }] });
    await tokens.clientCredentials({ connection: 'svc', resource: 'https://api-1.example.test' });
    expect(sm.reads).toBe(1);
    // Rotate: the server now knows only the new secret, the manager still holds the old one.
    const rotated = await idp.registerClient({ client_id: reg.client_id, client_secret: 'rotated-secret-value-0123456789', grant_types: ['client_credentials'] });
    sm.secret = rotated.client_secret as string;
    const t = await tokens.clientCredentials({ connection: 'svc', resource: 'https://api-2.example.test' });
    expect(t.accessToken.length).toBeGreaterThan(10);
    expect(sm.reads).toBe(2);
  });

  it('encryption keys from a loader: a key added by rotation is used without a restart, older records still read', async () => {
    const k1 = generateEncryptionKey();
    const k2 = generateEncryptionKey();
    let keys = [k1];
    let loads = 0;
    const store = new Keyv();
    const conn = [{ id: 'kaggle', kind: 'apiKey' as const }];
    const tokens = createTokenManager({ store, connections: conn, encryptionKey: { load: async () => (loads++, keys), ttlSeconds: 0 } });
    await tokens.setApiKey({ connection: 'kaggle', userId: 'alice', key: 'kaggle-key-alice' });
    keys = [k2, k1]; // rotation: new key first
    await tokens.setApiKey({ connection: 'kaggle', userId: 'bob', key: 'kaggle-key-bob' });
    expect((await tokens.getAccessToken({ connection: 'kaggle', userId: 'alice' })).accessToken).toBe('kaggle-key-alice');
    expect(loads).toBeGreaterThanOrEqual(2);
    // bob's record was written with k2: a manager that knows only k1 cannot read it.
    const old = createTokenManager({ store, connections: conn, encryptionKey: k1 });
    expect((await old.getAccessToken({ connection: 'kaggle', userId: 'alice' })).accessToken).toBe('kaggle-key-alice');
    await expectCode(old.getAccessToken({ connection: 'kaggle', userId: 'bob' }), 'STORE_UNAVAILABLE');
    // A loader that fails at first use: a typed error for that call.
    const failing = createTokenManager({ store: new Keyv(), connections: conn, encryptionKey: async () => Promise.reject(new Error('vault sealed')) });
    expect((await expectCode(failing.getAccount({ connection: 'kaggle', userId: 'alice' }), 'TOKEN_ENDPOINT_UNAVAILABLE')).reason).toBe('secret_unavailable');
  });
});

void anonymousContext;
