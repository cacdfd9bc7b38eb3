// A real local OpenID Provider (oidc-provider) for tests: Node only.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';
import { z } from 'zod';
import { AgentIamError } from '../errors.js';
import { parseOptions } from '../lib/options.js';
import { requireSecureUrl } from '../lib/secure-url.js';
import { concat, CookieJar, escapeHtml, formToObject, loadOidcProvider, newKey, peekBody, readBody, type OidcModule } from './idp-support.js';
import type {
  BackchannelRequest,
  RegisteredClient,
  TestIdentityProvider,
  TestIdentityProviderOptions,
  TokenEndpointFault,
  TokenForOptions,
} from './idp-types.js';
import { createUnboundedMemoryAdapter } from './memory-adapter.js';

export type { BackchannelRequest, RegisteredClient, TestIdentityProvider, TestIdentityProviderOptions, TokenEndpointFault, TokenForOptions } from './idp-types.js';
import {
  TOKEN_EXCHANGE_DUPLICATES,
  TOKEN_EXCHANGE_GRANT,
  TOKEN_EXCHANGE_PARAMETERS,
  signAccessToken,
  tokenExchangeHandler,
  type SigningKey,
} from './token-exchange.js';

const OIDC_SCOPES = new Set(['openid', 'offline_access', 'profile', 'email', 'address', 'phone', 'groups']);
/** The OpenID scopes this provider offers (`scopes` in its configuration). */
const STATIC_SCOPES = ['openid', 'offline_access', 'email', 'profile', 'groups'];

/**
 * oidc-provider refuses client metadata whose `scope` names anything but its OpenID scopes, while MCP
 * clients register with the resource's scopes (`mcp:tools`). A client's `scope` only ever restricts
 * OpenID scopes, so resource scopes are dropped from it: same behaviour, and registration succeeds.
 */
function withStaticScopesOnly(metadata: Record<string, unknown>): Record<string, unknown> {
  if (typeof metadata.scope !== 'string') return metadata;
  const kept = metadata.scope.split(' ').filter((s) => STATIC_SCOPES.includes(s));
  const out = { ...metadata };
  if (kept.length > 0) out.scope = kept.join(' ');
  else delete out.scope;
  return out;
}

/** Claims a user's profile may not set in an access token. */
const RESERVED_CLAIMS = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'client_id', 'scope', 'cnf', 'act', 'azp', 'typ']);
const DEFAULT_AUDIENCE = 'agent-iam:test';

const optionsSchema = z.strictObject({
  port: z.number().int().min(0).max(65535).optional(),
  clients: z.array(z.record(z.string(), z.unknown())).optional(),
  accessTokenTtl: z.number().int().positive().optional(),
  refreshTokenRotation: z.boolean().optional(),
  resources: z
    .record(
      z.string().url(),
      z.object({ scopes: z.array(z.string().min(1)).optional(), accessTokenTtl: z.number().int().positive().optional() }),
    )
    .optional(),
  defaultResource: z.string().url().optional(),
  pkceRequired: z.boolean().optional(),
  clientIdMetadataDocuments: z.boolean().optional(),
  users: z.record(z.string().min(1), z.record(z.string(), z.unknown())).optional(),
});

/**
 * Start a real OpenID Provider (oidc-provider) on 127.0.0.1 for tests: discovery, PKCE (S256),
 * open dynamic client registration, client credentials, refresh tokens with rotation, revocation,
 * introspection, RFC 8707 resource indicators with JWT access tokens, RFC 9207 `iss`, and an
 * RFC 8693 token-exchange grant that nests `act` claims. Any user id can log in; `authorize()`
 * completes a user's login and consent without a browser.
 *
 * Requires the optional peer dependency `oidc-provider` (v9).
 *
 * @example
 * ```ts
 * import { createTestIdentityProvider } from 'agent-iam/testing';
 * const idp = await createTestIdentityProvider({ resources: { 'https://api.example.com': { scopes: ['read'] } } });
 * const token = await idp.tokenFor({ userId: 'alice', email: 'alice@example.com', scopes: ['read'], audience: 'https://api.example.com' });
 * // ... verify `token` against idp.issuer / idp.jwksUri ...
 * await idp.close();
 * ```
 */
export async function createTestIdentityProvider(options: TestIdentityProviderOptions = {}): Promise<TestIdentityProvider> {
  const opts = parseOptions(optionsSchema, options);
  const accessTokenTtl = opts.accessTokenTtl ?? 300;
  const resources = opts.resources ?? {};
  const users = opts.users ?? {};
  const rotation = opts.refreshTokenRotation ?? true;
  const pkceRequired = opts.pkceRequired ?? true;

  // RSA key generation dominates start-up: run it while the module loads and the server binds.
  const firstKey = newKey();
  const oidcModule = loadOidcProvider();
  firstKey.catch(() => undefined);
  oidcModule.catch(() => undefined);

  // Listen first: the issuer must carry the real port.
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server: Server = createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;
  try {
    return await start(server, issuer, await oidcModule, await firstKey);
  } catch (error) {
    server.close();
    throw error;
  }

  async function start(
    server: Server,
    issuer: string,
    { default: Provider, errors }: OidcModule,
    first: Awaited<ReturnType<typeof newKey>>,
  ): Promise<TestIdentityProvider> {
    const providerKid = first.key.kid;
    const privateJwk = first.privateJwk;
    // Published keys, newest first; `signingKey` signs tokenFor(). The provider signs with `first`.
    let published: Array<{ key: SigningKey; publicJwk: JWK }> = [first];
    let signingKey: SigningKey = first.key;
    let jwksBody = JSON.stringify({ keys: published.map((k) => k.publicJwk) });
    const keyFor = (kid: unknown): SigningKey | undefined => published.find((k) => k.key.kid === kid)?.key;

    // Resource scopes learned from requests, for resources without configured scopes ("accept any").
    const learnedScopes = new Map<string, Set<string>>();
    // CIBA requests waiting on the user's device.
    const backchannel: BackchannelRequest[] = [];
    // Grants given through authorize(), so that revokeGrants() can find them.
    const grants = new Map<string, { userId: string; clientId: string }>();

    /** A user's profile claims that may go into access tokens (everything but the registered claims). */
    function profileClaims(sub: string): Record<string, unknown> {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(userClaims(sub))) if (!RESERVED_CLAIMS.has(k)) out[k] = v;
      return out;
    }

    function userClaims(sub: string): Record<string, unknown> {
      const extra = users[sub] ?? {};
      const claims: Record<string, unknown> = { ...extra, sub };
      if (claims.email === undefined && sub.includes('@')) claims.email = sub;
      if (claims.email !== undefined && claims.email_verified === undefined) claims.email_verified = true;
      return claims;
    }

    const configuration = {
      clients: [],
      // Not oidc-provider's default adapter: it forgets the oldest of 1,000 entries (~150 users).
      adapter: createUnboundedMemoryAdapter(),
      jwks: { keys: [privateJwk] },
      cookies: { keys: [crypto.randomUUID(), crypto.randomUUID()] },
      claims: {
        openid: ['sub'],
        email: ['email', 'email_verified'],
        profile: ['name', 'given_name', 'family_name', 'preferred_username', 'picture'],
        groups: ['groups'],
      },
      scopes: STATIC_SCOPES,
      features: {
        devInteractions: { enabled: false },
        registration: { enabled: true, initialAccessToken: false },
        registrationManagement: { enabled: true, rotateRegistrationAccessToken: false },
        clientCredentials: { enabled: true },
        revocation: {
          enabled: true,
          // Only the client a token was issued to may revoke it (oidc-provider's default, without its notice).
          // eslint-disable-next-line @typescript-eslint/no-explicit-any
          allowedPolicy: async (_ctx: any, client: any, token: any) => {
            if (token.clientId === client.clientId) return true;
            if (client.clientAuthMethod === 'none') return false;
            throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
          },
        },
        introspection: {
          enabled: true,
          // eslint-disable-next-line @typescript-eslint/no-explicit-any
          allowedPolicy: async (ctx: any, client: any, token: any) =>
            !(client.clientAuthMethod === 'none' && token.clientId !== ctx.oidc.client.clientId),
        },
        userinfo: { enabled: true },
        ciba: {
          enabled: true,
          deliveryModes: ['poll'],
          // The login hint is the user id.
          processLoginHint: async (_ctx: unknown, loginHint: string) => loginHint,
          processLoginHintToken: async () => {
            throw new errors.InvalidRequest('login_hint_token is not supported; use login_hint');
          },
          verifyUserCode: async () => undefined,
          validateRequestContext: async () => undefined,
          // Printable text up to 100 characters (oidc-provider's default allows 20 of a small set).
          validateBindingMessage: async (_ctx: unknown, message: string | undefined) => {
            // eslint-disable-next-line no-control-regex
            if (message !== undefined && (message.length === 0 || message.length > 100 || /[\u0000-\u001f\u007f-\u009f]/.test(message))) {
              throw new errors.InvalidBindingMessage('binding_message must be 1 to 100 printable characters');
            }
          },
          // eslint-disable-next-line @typescript-eslint/no-explicit-any
          triggerAuthenticationDevice: async (ctx: any, request: any, account: any, client: any) => {
            const r: BackchannelRequest = { authReqId: String(request.jti), userId: String(account.accountId), clientId: String(client.clientId), scope: String(request.scope ?? '') };
            const message = ctx?.oidc?.params?.binding_message ?? request.bindingMessage;
            if (typeof message === 'string') r.bindingMessage = message;
            const details = ctx?.oidc?.params?.authorization_details;
            if (typeof details === 'string') r.authorizationDetails = details;
            backchannel.push(r);
          },
        },
        resourceIndicators: {
          enabled: true,
          // eslint-disable-next-line @typescript-eslint/no-explicit-any
          defaultResource: async (_ctx: any, _client: any, oneOf?: string | string[]) => oneOf ?? opts.defaultResource,
          useGrantedResource: async () => true,
          // eslint-disable-next-line @typescript-eslint/no-explicit-any
          getResourceServerInfo: async (ctx: any, indicator: string) => {
            const conf = resources[indicator];
            let scope: string;
            if (conf?.scopes !== undefined) {
              scope = conf.scopes.join(' ');
            } else {
              let learned = learnedScopes.get(indicator);
              if (learned === undefined) learnedScopes.set(indicator, (learned = new Set()));
              const requested = ctx?.oidc?.params?.scope;
              if (typeof requested === 'string') {
                for (const s of requested.split(' ')) if (s !== '' && !OIDC_SCOPES.has(s)) learned.add(s);
              }
              scope = [...learned].join(' ');
            }
            return {
              scope,
              audience: indicator,
              accessTokenFormat: 'jwt',
              accessTokenTTL: conf?.accessTokenTtl ?? accessTokenTtl,
              jwt: { sign: { alg: 'RS256' } },
            };
          },
        },
      },
      pkce: { required: () => pkceRequired },
      ttl: {
        AccessToken: accessTokenTtl,
        ClientCredentials: accessTokenTtl,
        AuthorizationCode: 60,
        IdToken: 3600,
        Interaction: 600,
        Session: 3600,
        Grant: 14 * 24 * 3600,
        RefreshToken: 14 * 24 * 3600,
        // CIBA: requested_expiry when asked (at most 10 minutes), else 10 minutes.
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        BackchannelAuthenticationRequest: (ctx: any) => {
          const asked = Number(ctx?.oidc?.params?.requested_expiry);
          return Number.isFinite(asked) && asked > 0 ? Math.min(600, asked) : 600;
        },
      },
      // Refresh tokens for every client allowed the refresh_token grant, without offline_access.
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      issueRefreshToken: async (_ctx: any, client: any) => client.grantTypeAllowed('refresh_token'),
      expiresWithSession: async () => false,
      rotateRefreshToken: () => rotation,
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      findAccount: async (_ctx: any, sub: string) => ({
        accountId: sub,
        claims: async () => userClaims(sub),
      }),
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      extraTokenClaims: async (_ctx: any, token: any) => {
        if (typeof token?.accountId !== 'string') return undefined;
        const claims = profileClaims(token.accountId);
        return Object.keys(claims).length === 0 ? undefined : claims;
      },
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      interactions: { url: async (_ctx: any, interaction: any) => `/interaction/${interaction.uid}` },
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      renderError: async (ctx: any, out: Record<string, unknown>) => {
        ctx.type = 'json';
        ctx.body = out;
      },
      clientBasedCORS: () => true,
      discovery: opts.clientIdMetadataDocuments === true ? { client_id_metadata_document_supported: true } : {},
    };

    const provider = new Provider(issuer, configuration);
    provider.registerGrantType(
      TOKEN_EXCHANGE_GRANT,
      tokenExchangeHandler({
        issuer,
        signingKey: () => signingKey,
        keyFor,
        findOpaque: async (value: string) => {
          const at = await provider.AccessToken.find(value).catch(() => undefined);
          if (!at || at.isExpired || typeof at.accountId !== 'string') return undefined;
          return { sub: at.accountId, scope: at.scope ?? '', client_id: at.clientId, ...profileClaims(at.accountId) };
        },
        accessTokenTtl,
        defaultResource: opts.defaultResource,
        resources,
        errors,
      }),
      TOKEN_EXCHANGE_PARAMETERS,
      TOKEN_EXCHANGE_DUPLICATES,
    );

    // Counters and faults, in front of the token endpoint.
    const stats = { token: {} as Record<string, number>, jwks: 0, revocation: 0 };
    const count = (grantType: unknown): void => {
      const name = typeof grantType === 'string' && grantType !== '' ? grantType : 'unknown';
      stats.token[name] = (stats.token[name] ?? 0) + 1;
    };
    let fault: TokenEndpointFault | null = null;
    let faultRemaining = Infinity;
    let jwksFault: TokenEndpointFault | null = null;
    let jwksFaultRemaining = Infinity;
    const jwksPath = new URL(provider.urlFor('jwks')).pathname;

    /** GET /jwks is answered here, so that rotated keys are published and fetches are counted. */
    async function serveJwks(res: ServerResponse): Promise<void> {
      stats.jwks += 1;
      const active = jwksFault;
      if (active !== null && jwksFaultRemaining > 0) {
        jwksFaultRemaining -= 1;
        if (jwksFaultRemaining <= 0 && jwksFault === active) jwksFault = null;
        if (active.kind === 'slow') {
          await new Promise((r) => setTimeout(r, active.delayMs ?? 1000));
        } else {
          res.writeHead(503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
          res.end('{"error":"temporarily_unavailable"}');
          return;
        }
      }
      if (res.destroyed) return;
      res.writeHead(200, { 'content-type': 'application/jwk-set+json; charset=utf-8', 'cache-control': 'no-store' });
      res.end(jwksBody);
    }
    const tokenPath = new URL(provider.urlFor('token')).pathname;
    const authPath = new URL(provider.urlFor('authorization')).pathname;
    const registrationPath = new URL(provider.urlFor('registration')).pathname;

    // Client ID Metadata Documents: fetch and register URL client ids at the authorization endpoint.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    provider.use(async function clientIdMetadataDocuments(ctx: any, next: () => Promise<void>) {
      if (opts.clientIdMetadataDocuments !== true || ctx.path !== authPath) return next();
      let clientId: string | null = null;
      if (ctx.method === 'GET') {
        clientId = new URLSearchParams(ctx.querystring).get('client_id');
      } else if (ctx.method === 'POST' && ctx.is('application/x-www-form-urlencoded')) {
        const body = formToObject(await peekBody(ctx.req));
        clientId = typeof body.client_id === 'string' ? body.client_id : null;
      }
      if (clientId === null || !/^https?:\/\//i.test(clientId)) return next();
      const problem = await registerFromDocument(clientId);
      if (problem !== undefined) {
        ctx.status = 400;
        ctx.set('cache-control', 'no-store');
        ctx.body = { error: 'invalid_client', error_description: `client metadata document: ${problem}` };
        return;
      }
      return next();
    });

    /** Fetch, check and register a Client ID Metadata Document; returns what is wrong, if anything. */
    async function registerFromDocument(clientId: string): Promise<string | undefined> {
      let url: URL;
      try {
        url = requireSecureUrl(clientId, 'client_id');
      } catch {
        return 'client_id must be an https URL (http only on loopback)';
      }
      if (url.href !== clientId || url.pathname === '/' || url.hash !== '' || url.search !== '') {
        return 'client_id must be a canonical URL with a path, without query or fragment';
      }
      let document: unknown;
      try {
        const res = await fetch(url, { redirect: 'manual', headers: { accept: 'application/json' }, signal: AbortSignal.timeout(5000) });
        if (res.status !== 200) return `fetch answered ${res.status}`;
        const text = await res.text();
        if (text.length > 64 * 1024) return 'document too large';
        document = JSON.parse(text);
      } catch {
        return 'fetch failed or the body is not JSON';
      }
      if (document === null || typeof document !== 'object' || Array.isArray(document)) return 'not a JSON object';
      const doc = document as Record<string, unknown>;
      if (doc.client_id !== clientId) return 'client_id in the document does not match its URL';
      if ('client_secret' in doc || 'client_secret_expires_at' in doc) return 'must not contain a client secret';
      const method = doc.token_endpoint_auth_method ?? 'none';
      if (typeof method !== 'string' || method.startsWith('client_secret_')) return 'shared-secret client authentication is not allowed';
      try {
        await registerClient({ ...doc, token_endpoint_auth_method: method });
      } catch (error) {
        return error instanceof Error ? error.message : 'invalid client metadata';
      }
      return undefined;
    }

    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    provider.use(async function registrationScopes(ctx: any, next: () => Promise<void>) {
      if (ctx.method !== 'POST' || ctx.path !== registrationPath || !ctx.is('application/json')) return next();
      try {
        // oidc-provider then reads the rewritten body itself.
        await peekBody(ctx.req, (raw) => {
          const metadata: unknown = JSON.parse(raw);
          const kept = metadata !== null && typeof metadata === 'object' && !Array.isArray(metadata) ? withStaticScopesOnly(metadata as Record<string, unknown>) : metadata;
          return JSON.stringify(kept);
        });
      } catch {
        ctx.status = 400;
        ctx.body = { error: 'invalid_client_metadata', error_description: 'the body is not valid JSON' };
        return;
      }
      return next();
    });

    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    provider.use(async function tokenEndpointFaults(ctx: any, next: () => Promise<void>) {
      if (ctx.method !== 'POST' || ctx.path !== tokenPath) return next();
      const active = fault;
      if (active === null) {
        await next();
        count(ctx.oidc?.params?.grant_type);
        return;
      }
      // A fault is set: read the body to learn the grant type (and give it back for oidc-provider).
      const body = formToObject(await peekBody(ctx.req));
      count(body.grant_type);
      if ((active.grantType !== undefined && active.grantType !== body.grant_type) || faultRemaining <= 0) {
        return next();
      }
      faultRemaining -= 1;
      if (faultRemaining <= 0 && fault === active) fault = null;
      ctx.set('cache-control', 'no-store');
      switch (active.kind) {
        case 'slow':
          // The server does the work now and answers delayMs late, as a slow server that completes
          // a request its client gave up on (a refresh rotates although nobody hears the answer).
          // Working first also means the body is read while the request is still open.
          await next();
          await new Promise((r) => setTimeout(r, active.delayMs ?? 1000));
          return;
        case '5xx':
          ctx.status = 503;
          ctx.body = { error: 'temporarily_unavailable', error_description: 'injected fault' };
          return;
        case 'invalid_grant':
          ctx.status = 400;
          ctx.body = { error: 'invalid_grant', error_description: 'injected fault' };
          return;
        case 'invalid_client':
          ctx.status = 401;
          ctx.set('www-authenticate', 'Basic realm="test"');
          ctx.body = { error: 'invalid_client', error_description: 'injected fault' };
          return;
      }
    });

    // The login/consent page: GET shows a form (for a human), POST logs in and consents.
    async function interaction(req: IncomingMessage, res: ServerResponse): Promise<void> {
      try {
        if (req.method === 'GET') {
          const details = await provider.interactionDetails(req, res);
          const uid = escapeHtml(String(details.uid));
          res.setHeader('content-type', 'text/html; charset=utf-8');
          res.setHeader('cache-control', 'no-store');
          res.end(
            `<!doctype html><title>Test identity provider</title><form method="post" action="/interaction/${uid}">` +
              `<p>Client <b>${escapeHtml(String(details.params.client_id))}</b> asks for <b>${escapeHtml(String(details.params.scope ?? ''))}</b>.</p>` +
              (details.prompt.name === 'login'
                ? `<label>Log in as user id <input name="user_id" required autofocus></label> `
                : `<p>Signed in as <b>${escapeHtml(String(details.session?.accountId ?? ''))}</b>.</p>`) +
              `<button type="submit">Allow</button> <button type="submit" name="deny" value="1" formnovalidate>Deny</button></form>`,
          );
          return;
        }
        if (req.method !== 'POST') {
          res.statusCode = 405;
          res.end();
          return;
        }
        const form = new URLSearchParams(await readBody(req));
        const details = await provider.interactionDetails(req, res);
        if (form.get('deny') === '1' || form.get('deny') === 'true') {
          await provider.interactionFinished(
            req,
            res,
            { error: 'access_denied', error_description: 'End-User denied the request' },
            { mergeWithLastSubmission: false },
          );
          return;
        }
        if (details.prompt.name === 'login') {
          const userId = form.get('user_id') ?? '';
          if (userId === '') {
            res.statusCode = 400;
            res.end('user_id is required');
            return;
          }
          await provider.interactionFinished(req, res, { login: { accountId: userId } }, { mergeWithLastSubmission: false });
          return;
        }
        // consent: grant everything that was asked for.
        const { prompt, params, session } = details;
        const grant = details.grantId
          ? await provider.Grant.find(details.grantId)
          : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
        const d = prompt.details ?? {};
        if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
        if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
        if (d.missingResourceScopes) {
          for (const [indicator, scopes] of Object.entries(d.missingResourceScopes as Record<string, string[]>)) {
            grant.addResourceScope(indicator, scopes.join(' '));
          }
        }
        const grantId = await grant.save();
        grants.set(grantId, { userId: String(session.accountId), clientId: String(params.client_id) });
        await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      } catch (error) {
        if (!res.headersSent) {
          res.statusCode = 400;
          res.setHeader('content-type', 'application/json');
          const name = (error as { error?: unknown })?.error;
          res.end(JSON.stringify({ error: typeof name === 'string' ? name : 'interaction_failed' }));
        }
      }
    }

    const callback = provider.callback();
    const revocationPath = new URL(provider.urlFor('revocation')).pathname;
    handler = (req, res) => {
      const url = req.url ?? '';
      if (req.method === 'POST' && url === revocationPath) stats.revocation += 1;
      if (url.startsWith('/interaction/')) {
        void interaction(req, res);
        return;
      }
      if (req.method === 'GET' && (url === jwksPath || url.startsWith(`${jwksPath}?`))) {
        void serveJwks(res);
        return;
      }
      callback(req, res);
    };

    async function registerClient(metadata: Record<string, unknown>): Promise<RegisteredClient> {
      const m: Record<string, unknown> = withStaticScopesOnly({ ...metadata });
      const hasRedirects = Array.isArray(m.redirect_uris) && m.redirect_uris.length > 0;
      m.client_id ??= `client-${crypto.randomUUID()}`;
      if (m.grant_types === undefined) {
        m.grant_types = hasRedirects
          ? ['authorization_code', 'refresh_token', TOKEN_EXCHANGE_GRANT]
          : ['client_credentials', TOKEN_EXCHANGE_GRANT];
      }
      if (m.response_types === undefined) {
        m.response_types = (m.grant_types as unknown[]).includes('authorization_code') ? ['code'] : [];
      }
      if (m.token_endpoint_auth_method !== 'none' && m.client_secret === undefined) {
        m.client_secret = crypto.randomUUID() + crypto.randomUUID();
      }
      const clientId = String(m.client_id);
      try {
        await provider.Client.validate(m);
        await provider.Client.adapter.upsert(clientId, m);
        const client = await provider.Client.find(clientId);
        if (!client) throw new Error('client not stored');
        return client.metadata() as RegisteredClient;
      } catch (error) {
        const description = (error as { error_description?: unknown })?.error_description;
        throw new AgentIamError(
          'CONFIG_INVALID',
          `Invalid client metadata: ${typeof description === 'string' ? description : 'rejected by the identity provider'}`,
          { field: 'metadata' },
        );
      }
    }

    for (const client of opts.clients ?? []) await registerClient(client);

    async function authorize(authorizationUrl: string | URL, o: { userId: string; deny?: boolean }): Promise<string> {
      let url = new URL(String(authorizationUrl));
      if (url.origin !== issuer) {
        throw new AgentIamError('REQUEST_INVALID', 'authorize(): the URL is not on this identity provider');
      }
      const jar = new CookieJar();
      let init: RequestInit = { redirect: 'manual' };
      for (let hop = 0; hop < 10; hop++) {
        const headers: Record<string, string> = { cookie: jar.header() };
        const response = await fetch(url, { ...init, headers: { ...headers, ...(init.headers as Record<string, string>) } });
        jar.store(response);
        const location = response.headers.get('location');
        if (response.status < 300 || response.status >= 400 || location === null) {
          let oauthError = 'server_error';
          try {
            const body = (await response.json()) as { error?: unknown };
            if (typeof body.error === 'string') oauthError = body.error;
          } catch {
            // not JSON
          }
          throw new AgentIamError('OAUTH_ERROR', `authorize(): the identity provider answered ${response.status} (${oauthError})`, {
            oauthError,
          });
        }
        await response.body?.cancel();
        const next = new URL(location, url);
        const onProvider =
          next.origin === issuer &&
          (next.pathname === authPath || next.pathname.startsWith(`${authPath}/`) || next.pathname.startsWith('/interaction/'));
        if (!onProvider) {
          return next.href;
        }
        url = next;
        if (next.pathname.startsWith('/interaction/')) {
          const form = new URLSearchParams({ user_id: o.userId });
          if (o.deny === true) form.set('deny', '1');
          init = {
            redirect: 'manual',
            method: 'POST',
            body: form.toString(),
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
          };
        } else {
          init = { redirect: 'manual' };
        }
      }
      throw new AgentIamError('OAUTH_ERROR', 'authorize(): too many redirects', { oauthError: 'server_error' });
    }

    async function tokenFor(o: TokenForOptions): Promise<string> {
      const now = Math.floor(Date.now() / 1000);
      const known = profileClaims(o.userId);
      const email = o.email ?? (known.email as string | undefined);
      const payload: Record<string, unknown> = {
        ...known,
        iss: issuer,
        sub: o.userId,
        aud: o.audience ?? opts.defaultResource ?? DEFAULT_AUDIENCE,
        iat: now,
        exp: now + (o.expiresIn ?? accessTokenTtl),
        jti: crypto.randomUUID(),
        client_id: 'agent-iam-test',
      };
      if (o.scopes !== undefined && o.scopes.length > 0) payload.scope = o.scopes.join(' ');
      if (email !== undefined) {
        payload.email = email;
        payload.email_verified = o.email !== undefined ? true : (known.email_verified ?? true);
      }
      if (o.act !== undefined) payload.act = o.act;
      Object.assign(payload, o.claims ?? {});
      return signAccessToken(signingKey, payload, o.typ);
    }

    const sockets = new Set<import('node:net').Socket>();
    server.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });

    let closed: Promise<void> | undefined;
    return {
      issuer,
      jwksUri: `${issuer}/jwks`,
      tokenEndpoint: provider.urlFor('token'),
      provider,
      tokenFor,
      authorize,
      registerClient,
      stats,
      resetStats() {
        for (const k of Object.keys(stats.token)) delete stats.token[k];
        stats.jwks = 0;
        stats.revocation = 0;
      },
      setFault(next) {
        if (next === null) {
          fault = jwksFault = null;
          return;
        }
        if (next.endpoint === 'jwks') {
          jwksFault = next;
          jwksFaultRemaining = next.times ?? Infinity;
        } else {
          fault = next;
          faultRemaining = next.times ?? Infinity;
        }
      },
      async revokeGrants(filter) {
        let revoked = 0;
        for (const [grantId, g] of grants) {
          if (g.userId !== filter.userId || (filter.clientId !== undefined && g.clientId !== filter.clientId)) continue;
          await Promise.all([
            provider.AccessToken.revokeByGrantId(grantId),
            provider.RefreshToken.revokeByGrantId(grantId),
            provider.AuthorizationCode.revokeByGrantId(grantId),
            provider.Grant.adapter.destroy(grantId),
          ]);
          grants.delete(grantId);
          revoked += 1;
        }
        return revoked;
      },
      backchannelRequests: () => backchannel.map((r) => ({ ...r })),
      async completeBackchannel(authReqId, o) {
        const request = await provider.BackchannelAuthenticationRequest.find(authReqId, { ignoreExpiration: true });
        if (!request) throw new AgentIamError('REQUEST_INVALID', 'completeBackchannel(): unknown auth_req_id');
        if (o.approve) {
          const grant = new provider.Grant({ clientId: request.clientId, accountId: request.accountId });
          grant.addOIDCScope(request.scope);
          await grant.save();
          await provider.backchannelResult(request, grant);
        } else {
          await provider.backchannelResult(request, new errors.AccessDenied('the end-user refused the request'));
        }
        const i = backchannel.findIndex((r) => r.authReqId === authReqId);
        if (i !== -1) backchannel.splice(i, 1);
      },
      async rotateSigningKey(o = {}) {
        const fresh = await newKey();
        const previous = signingKey;
        published = [fresh, ...published];
        if (o.retirePrevious === true && previous.kid !== providerKid) {
          published = published.filter((k) => k.key.kid !== previous.kid);
        }
        signingKey = fresh.key;
        jwksBody = JSON.stringify({ keys: published.map((k) => k.publicJwk) });
        return { kid: fresh.key.kid };
      },
      close() {
        closed ??= new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const socket of sockets) socket.destroy();
        });
        return closed;
      },
    };
  }
}
