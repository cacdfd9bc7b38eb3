// Shared setup for token-manager tests: a real oidc-provider (agent-iam/testing) on 127.0.0.1 and
// a pre-registered confidential client.
import { createTestIdentityProvider, type TestIdentityProvider, type TestIdentityProviderOptions } from '../../src/testing/index.js';
import { createTokenManager, type TokenManager, type TokenManagerOptions, type ConnectionConfig } from '../../src/index.js';
import { AgentIamError } from '../../src/errors.js';

export const REDIRECT = 'http://127.0.0.1:9/callback';

export interface Setup {
  idp: TestIdentityProvider;
  clientId: string;
  clientSecret: string;
  connection: ConnectionConfig;
}

export async function startIdp(options: TestIdentityProviderOptions = {}, client: Record<string, unknown> = {}): Promise<Setup> {
  const idp = await createTestIdentityProvider(options);
  const reg = await idp.registerClient({ redirect_uris: [REDIRECT], ...client });
  const clientId = reg.client_id;
  const clientSecret = reg.client_secret as string;
  return {
    idp,
    clientId,
    clientSecret,
    connection: { id: 'corp', issuer: idp.issuer, clientId, clientSecret, redirectUri: REDIRECT, scopes: ['openid', 'read'] },
  };
}

export function manager(setup: Setup, extra: Partial<TokenManagerOptions> = {}, connection: Partial<ConnectionConfig> = {}): TokenManager {
  return createTokenManager({ connections: [{ ...setup.connection, ...connection }], ...extra });
}

/** Run the whole consent: start, headless login/consent at the IdP, complete. */
export async function connect(tokens: TokenManager, idp: TestIdentityProvider, userId: string, connection = 'corp', orgId?: string) {
  const { url } = await tokens.startAuthorization({ connection, userId, ...(orgId ? { orgId } : {}) });
  const callback = await idp.authorize(url, { userId });
  return tokens.completeAuthorization(callback);
}

export async function expectCode<T>(p: Promise<T> | (() => unknown), code: string): Promise<AgentIamError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    const err = e as AgentIamError;
    if (err?.code !== code) throw new Error(`expected ${code}, got ${String(err?.code)}: ${String(err?.message)}`);
    return err;
  }
  throw new Error(`expected ${code}, but it succeeded`);
}

/** Asserts that no secret appears in any printable form of an error. */
export function assertNoSecret(err: unknown, secrets: string[]): void {
  const forms = [JSON.stringify(err), String(err), (err as Error)?.message ?? '', (err as Error)?.stack ?? '', JSON.stringify(Object.entries(err as object))];
  for (const s of secrets) {
    if (s.length < 6) continue;
    for (const f of forms) if (f.includes(s)) throw new Error('a secret leaked into an error');
  }
}
