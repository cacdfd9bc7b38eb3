/**
 * What every framework-adapter test runs against, all real and on 127.0.0.1: a local identity
 * provider (agent-iam/testing) for the callers' tokens and for a per-user OAuth connection, a tool
 * server that records what it receives, and agents built with createAgentIam on one shared store, so
 * that a second agent built on the same store stands for another process.
 *
 * Tools: `pay` (API key; `GET /charges/:id` allowed, `POST /refunds` needs approval), `notes` (each
 * user's own OAuth account on connection `notes`), `admin` (denied by policy).
 */
import { expect } from 'vitest';
import { createAgentIam, createKeyValueStore, generateEncryptionKey, type AgentContext, type AgentIam, type AuditEvent, type Store } from '../../../src/index.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../../src/testing/index.js';
import { startUpstream, type Received, type Upstream } from '../../outbound/upstream.js';

export const AGENT = 'shop-agent';
export const APPROVER = 'lead@example.com';
export const API_KEY = 'sk_live_adapter_secret_0123456789';
const AUDIENCE = 'urn:agent-iam:adapters';
const REDIRECT = 'http://127.0.0.1:9/oauth/callback';

export interface Harness {
  readonly idp: TestIdentityProvider;
  readonly api: Upstream;
  readonly store: Store;
  /** The agent of "this process". */
  readonly iam: AgentIam;
  readonly audit: AuditEvent[];
  /** Another agent on the same store: another process after a restart or on another replica. */
  newIam(): AgentIam;
  /** A verified context for a user (a real token from the identity provider). */
  contextOf(userId: string): Promise<AgentContext>;
  /** The user consents at the identity provider; the callback completes in `iam`'s token manager. */
  connect(iam: AgentIam, authorizationUrl: string, userId: string): Promise<void>;
  /** Requests the tool server received on a path (without query). */
  hits(path: string, method?: string): Received[];
  /** Every secret the run has seen: API key, client secret, callers' JWTs, access tokens sent to tools. */
  secrets(): string[];
  close(): Promise<void>;
}

export async function startHarness(): Promise<Harness> {
  const idp = await createTestIdentityProvider();
  const api = await startUpstream();
  const client = await idp.registerClient({ redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] });
  const store = createKeyValueStore();
  const encryptionKey = generateEncryptionKey();
  const audit: AuditEvent[] = [];
  const jwts: string[] = [];

  const build = (): AgentIam =>
    createAgentIam({
      agent: { id: AGENT },
      store,
      audit: (e) => void audit.push(e),
      verifier: { providers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri, audiences: [AUDIENCE], userIdClaim: 'sub' }] },
      tokens: {
        encryptionKey,
        connections: [{ id: 'notes', issuer: idp.issuer, clientId: client.client_id, clientSecret: client.client_secret as string, redirectUri: REDIRECT, scopes: ['openid'] }],
      },
      tools: [
        { name: 'pay', baseUrl: `${api.origin}/pay`, auth: { type: 'apiKey', key: API_KEY }, capabilities: [{ method: 'GET', path: '/pay/charges/:id' }, { method: 'POST', path: '/pay/refunds' }] },
        { name: 'notes', baseUrl: `${api.origin}/notes`, auth: { type: 'oauth2', connection: 'notes' } },
        { name: 'admin', baseUrl: `${api.origin}/admin`, auth: { type: 'none' } },
      ],
      policies: [
        { agent: AGENT, tool: 'pay' },
        { agent: AGENT, tool: 'pay', effect: 'approval', capabilities: [{ method: 'POST', path: '/pay/refunds' }] },
        { agent: AGENT, tool: 'notes' },
        { agent: AGENT, tool: 'admin', effect: 'deny' },
      ],
    });
  const iam = build();

  return {
    idp,
    api,
    store,
    iam,
    audit,
    newIam: build,
    async contextOf(userId) {
      const jwt = await idp.tokenFor({ userId, audience: AUDIENCE });
      jwts.push(jwt);
      return iam.verifier.verify({ headers: { authorization: `Bearer ${jwt}` } });
    },
    async connect(target, authorizationUrl, userId) {
      const callback = await idp.authorize(authorizationUrl, { userId });
      await (target.tokens as NonNullable<AgentIam['tokens']>).completeAuthorization(callback, { expectedUserId: userId });
    },
    hits(path, method) {
      return api.received.filter((r) => r.url.split('?')[0] === path && (method === undefined || r.method === method));
    },
    secrets() {
      const sent = api.received.map((r) => String(r.headers.authorization ?? '').replace(/^Bearer /, '')).filter((v) => v.length > 8);
      return [API_KEY, client.client_secret as string, ...jwts, ...sent];
    },
    async close() {
      await api.close();
      await idp.close();
    },
  };
}

/** The serialized state (and the audit trail) holds none of the run's secrets, only ids. */
export function expectNoSecrets(h: Harness, serialized: string): void {
  for (const secret of h.secrets()) expect(serialized.includes(secret), 'a secret in the serialized state').toBe(false);
  expect(serialized).not.toMatch(/eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\./); // no JWT at all
  expect(serialized).not.toMatch(/code_verifier|client_secret|refresh_token"?\s*[:=]/i);
  const trail = JSON.stringify(h.audit);
  for (const secret of h.secrets()) expect(trail.includes(secret), 'a secret in the audit trail').toBe(false);
}
