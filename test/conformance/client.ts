/**
 * An MCP client under test for the official MCP conformance suite's `auth/*` client scenarios
 * (`@modelcontextprotocol/conformance`), built only on agent-iam's public API:
 *
 * - `createTokenManager` with one connection whose `resource` is the MCP server URL (RFC 9728
 *   discovery, then pre-registered client, CIMD or dynamic registration, PKCE),
 * - `createToolFetch` with one tool for the MCP server (`oauth2`, or `clientCredentials`),
 * - on `CONSENT_REQUIRED`, the authorization URL is followed headlessly (the suite's mock
 *   authorization server approves at once and redirects with `code` and `state`) and handed to
 *   `tokens.completeAuthorization`, then the MCP request is sent again,
 * - the official MCP SDK `Client` over `StreamableHTTPClientTransport` with `fetch` = that wrapper:
 *   initialize, tools/list, tools/call `test-tool` (what the suite's reference client does).
 *
 * Invoked by the suite as `<command> <server-url>`, with `MCP_CONFORMANCE_SCENARIO` (scenario id)
 * and, for some scenarios, `MCP_CONFORMANCE_CONTEXT` (JSON: client_id, client_secret, ...).
 *
 * By default the client adds no OAuth logic of its own, so every failure is agent-iam's. With
 * `CONFORMANCE_CLIENT_ASSIST=1` it also does what an application could do on top of the public
 * API: on a 401/403 whose `WWW-Authenticate` names `scope`, run consent again asking for those scopes
 * (at most 3 authorizations in all). Run through `node scripts/conformance.mjs`.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  anonymousContext,
  createTokenManager,
  createToolFetch,
  isAgentIamError,
  type AgentContext,
  type ConnectionConfig,
  type ToolAuth,
} from '../../src/index.js';

/** The CIMD client id the suite's mock AS accepts (auth/basic-cimd); it need not resolve. */
const CIMD_CLIENT_METADATA_URL = 'https://conformance-test.local/client-metadata.json';
const REDIRECT_URI = 'http://localhost:3000/callback';
const USER_ID = 'conformance-user';
const CONNECTION = 'mcp';
const AGENT = 'conformance-client';
const MAX_AUTHORIZATIONS = 3;

const serverUrl = process.argv[process.argv.length - 1] as string;
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? '';
const assist = process.env.CONFORMANCE_CLIENT_ASSIST === '1';
const ctx: Record<string, string> = process.env.MCP_CONFORMANCE_CONTEXT ? JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT) : {};

function log(...parts: unknown[]): void {
  console.error('[agent-iam client]', ...parts);
}

/** A safe one-line description of an error: agent-iam's code, status and fields, never a token. */
function describe(e: unknown): string {
  if (isAgentIamError(e)) {
    const extra: string[] = [];
    for (const k of ['oauthError', 'field', 'reason', 'authorizationUrl'] as const) {
      const v = (e as unknown as Record<string, unknown>)[k];
      if (v !== undefined) extra.push(`${k}=${String(v)}`);
    }
    return `${e.code} (${e.status}): ${e.message}${extra.length ? ' [' + extra.join(' ') + ']' : ''}`;
  }
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** Parameters of the first Bearer challenge (enough for the suite's servers). */
function challengeParams(header: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (header === null) return out;
  for (const m of header.matchAll(/([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) {
    out[(m[1] as string).toLowerCase()] = (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return out;
}

type Mode = 'authorization_code' | 'client_credentials' | 'cross_app_access';

function setup(): { mode: Mode; connections: ConnectionConfig[]; auth: ToolAuth } {
  switch (scenario) {
    case 'auth/client-credentials-basic':
      return {
        mode: 'client_credentials',
        connections: [{ id: CONNECTION, resource: serverUrl, clientId: ctx.client_id, clientSecret: ctx.client_secret }],
        auth: { type: 'clientCredentials', connection: CONNECTION },
      };
    case 'auth/client-credentials-jwt':
      // RFC 7523 private_key_jwt with the key the suite hands out (PKCS#8 PEM).
      return {
        mode: 'client_credentials',
        connections: [{ id: CONNECTION, resource: serverUrl, clientId: ctx.client_id, clientPrivateKey: ctx.private_key_pem, ...(ctx.signing_algorithm ? { clientPrivateKeyAlg: ctx.signing_algorithm as 'ES256' } : {}) }],
        auth: { type: 'clientCredentials', connection: CONNECTION },
      };
    case 'auth/cross-app-access-complete-flow':
      return {
        mode: 'cross_app_access',
        connections: [
          { id: 'idp', tokenEndpoint: ctx.idp_token_endpoint, clientId: ctx.idp_client_id },
          { id: CONNECTION, resource: serverUrl, clientId: ctx.client_id, clientSecret: ctx.client_secret },
        ],
        auth: { type: 'clientCredentials', connection: CONNECTION },
      };
    case 'auth/pre-registration':
      return {
        mode: 'authorization_code',
        connections: [{ id: CONNECTION, resource: serverUrl, clientId: ctx.client_id, clientSecret: ctx.client_secret, redirectUri: REDIRECT_URI, probeResource: true }],
        auth: { type: 'oauth2', connection: CONNECTION },
      };
    default:
      // The general configuration: CIMD when the server advertises it, else dynamic registration.
      return {
        mode: 'authorization_code',
        connections: [{ id: CONNECTION, resource: serverUrl, registration: 'dynamic', clientMetadataUrl: CIMD_CLIENT_METADATA_URL, redirectUri: REDIRECT_URI, probeResource: true }],
        auth: { type: 'oauth2', connection: CONNECTION },
      };
  }
}

async function main(): Promise<void> {
  log(`scenario=${scenario} server=${serverUrl}${assist ? ' (assist mode)' : ''}`);
  const { mode, connections, auth } = setup();
  const tokens = createTokenManager({ connections, retries: 0, timeoutMs: 5000 });
  const toolFetch = createToolFetch({
    agent: { id: AGENT },
    tools: [{ name: 'mcp', baseUrl: serverUrl, auth, forwardUser: false }],
    policies: [{ agent: AGENT, tool: 'mcp' }],
    tokens,
  });
  const context: AgentContext = { ...anonymousContext(), userId: USER_ID, subject: USER_ID, authenticated: true };

  if (mode === 'cross_app_access') {
    await crossAppAccess(tokens);
    return;
  }

  let authorizations = 0;
  /** Headless consent: the user agent follows the authorization URL; the callback goes to completeAuthorization. */
  const consent = async (authorizationUrl: string): Promise<void> => {
    authorizations++;
    const u = new URL(authorizationUrl);
    log(`authorization #${authorizations}: ${u.origin}${u.pathname} scope=${u.searchParams.get('scope') ?? '(none)'} client_id=${u.searchParams.get('client_id')} resource=${u.searchParams.get('resource') ?? '(none)'}`);
    const res = await fetch(authorizationUrl, { redirect: 'manual' });
    const location = res.headers.get('location');
    if (location === null) throw new Error(`authorization endpoint answered ${res.status} without a redirect`);
    const account = await tokens.completeAuthorization(new URL(location, authorizationUrl), { expectedUserId: USER_ID });
    log(`account ${account.status}, scopes=[${account.scopes.join(' ')}]`);
  };

  /** The URL to send the user to; when CONSENT_REQUIRED came without one, startAuthorization shows why. */
  const authorizationUrlOf = async (e: unknown, scopes?: string[]): Promise<string> => {
    const known = isAgentIamError(e) ? e.authorizationUrl : undefined;
    if (known !== undefined && scopes === undefined) return known;
    if (known === undefined) log(`CONSENT_REQUIRED carried no authorizationUrl (${describe(e)}); calling startAuthorization to see why`);
    try {
      return (await tokens.startAuthorization({ connection: CONNECTION, userId: USER_ID, ...(scopes ? { scopes } : {}) })).url;
    } catch (inner) {
      log(`startAuthorization failed: ${describe(inner)}`);
      throw inner;
    }
  };

  const mcpFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await toolFetch(input, { ...init, context });
      } catch (e) {
        log(`toolFetch threw ${describe(e)}`);
        if (mode === 'authorization_code' && isAgentIamError(e) && e.code === 'CONSENT_REQUIRED' && attempt === 0 && authorizations < MAX_AUTHORIZATIONS) {
          await consent(await authorizationUrlOf(e));
          continue;
        }
        throw e;
      }
      if (res.status === 401 || res.status === 403) {
        const challenge = res.headers.get('www-authenticate');
        log(`MCP server answered ${res.status}; WWW-Authenticate: ${challenge ?? '(none)'}`);
        const scope = challengeParams(challenge).scope;
        if (assist && mode === 'authorization_code' && scope !== undefined && authorizations < MAX_AUTHORIZATIONS && attempt < MAX_AUTHORIZATIONS) {
          const scopes = scope.split(' ').filter((s) => s !== '');
          await consent(await authorizationUrlOf(undefined, scopes));
          continue;
        }
      }
      return res;
    }
  };

  const client = new Client({ name: 'agent-iam-conformance-client', version: '1.0.0' }, { capabilities: {} });
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), { fetch: mcpFetch });
  await client.connect(transport);
  log('initialized');
  const tools = await client.listTools();
  log(`tools/list: ${tools.tools.map((t) => t.name).join(', ')}`);
  const result = await client.callTool({ name: 'test-tool', arguments: {} });
  log(`tools/call test-tool: ${JSON.stringify(result.content)}`);
  await transport.close();
}

/**
 * SEP-990 (cross-app access, enterprise-managed authorization): `tokens.enterpriseToken` exchanges
 * the IdP's ID token for an ID-JAG at the IdP and redeems it at the MCP server's authorization server
 * (discovered from the resource); then the MCP calls go out with that token.
 */
async function crossAppAccess(tokens: ReturnType<typeof createTokenManager>): Promise<void> {
  const { accessToken } = await tokens.enterpriseToken({ connection: CONNECTION, idp: 'idp', idToken: ctx.idp_id_token });
  log('enterprise token issued');
  const client = new Client({ name: 'agent-iam-conformance-client', version: '1.0.0' }, { capabilities: {} });
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), { requestInit: { headers: { authorization: `Bearer ${accessToken}` } } });
  await client.connect(transport);
  const tools = await client.listTools();
  log(`tools/list: ${tools.tools.map((t) => t.name).join(', ')}`);
  if (tools.tools.some((t) => t.name === 'test-tool')) await client.callTool({ name: 'test-tool', arguments: {} });
  await transport.close();
}

main().then(
  () => {
    log('done');
    process.exit(0);
  },
  (e: unknown) => {
    log(`FAILED: ${describe(e)}`);
    process.exit(1);
  },
);
