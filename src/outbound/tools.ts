/**
 * Tool definitions, their validation, and the registry that finds the tool of a URL by exact
 * origin and base path.
 *
 * @module
 */
import { z } from 'zod';
import { configError } from '../errors.js';
import { parseOptions } from '../lib/options.js';
import { secretSchema, type SecretSource } from '../lib/secret.js';
import { requireSecureUrl } from '../lib/secure-url.js';
import { safeUrl } from './url-safety.js';
import { ALLOWABLE_HEADERS } from '../policy/headers.js';

/**
 * AWS credentials for SigV4 signing.
 *
 * @example
 * ```ts
 * const credentials: AwsCredentials = { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN };
 * ```
 */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** STS session token, sent as `X-Amz-Security-Token` and signed. */
  sessionToken?: string;
}

/**
 * How toolFetch authenticates to a tool. The credential is injected after every check has passed,
 * and the caller can never set the header it uses.
 *
 * @example
 * ```ts
 * const stripe: ToolAuth = { type: 'apiKey', key: env.STRIPE_KEY };                       // Authorization: Bearer …
 * const weather: ToolAuth = { type: 'apiKey', key: env.WEATHER_KEY, header: 'X-API-Key' }; // X-API-Key: …
 * const github: ToolAuth = { type: 'oauth2', connection: 'github' };                       // the user's own token
 * const s3: ToolAuth = { type: 'awsSigV4', region: 'eu-west-1', service: 's3', credentials: async () => loadCreds() };
 * // Agent B gets the user's token narrowed to B (RFC 8693), with this agent's own token as actor_token:
 * const agentB: ToolAuth = { type: 'tokenExchange', connection: 'idp', audience: 'https://agent-b.example.com', scopes: ['search:read'],
 *   actorToken: () => tokens.clientCredentials({ connection: 'idp' }) };
 * ```
 */
export type ToolAuth =
  | { type: 'none' }
  | {
      type: 'apiKey';
      /**
       * The key: the value, `{ env: 'NAME' }`, or a loader for a secret manager (`() => Promise<string>`,
       * or `{ load, ttlSeconds }`), cached for its TTL and loaded again when the tool answers 401.
       * Never logged, never in an error.
       */
      key: SecretSource;
      /** Header name (default `authorization`). */
      header?: string;
      /** Scheme before the key (default `Bearer` for `authorization`, none for any other header). Use `''` for none. */
      scheme?: string;
    }
  | { type: 'oauth2'; /** Token-manager connection id; one account per user. */ connection: string }
  | { type: 'clientCredentials'; connection: string; scopes?: string[]; resource?: string }
  | {
      /**
       * Enterprise-managed authorization (ID-JAG): the caller's verified ID token from the enterprise
       * IdP (the context's raw token) is exchanged at `idp` for an ID-JAG and redeemed at
       * `connection`'s authorization server (`tokens.enterpriseToken`). Needs a user in the context.
       */
      type: 'enterprise';
      connection: string;
      idp: string;
      scopes?: string[];
    }
  | {
      type: 'tokenExchange';
      connection: string;
      audience?: string;
      resource?: string;
      /** The scopes asked for: only a subset of the inbound token's scopes can be granted. */
      scopes: string[];
      /**
       * The acting agent's own token, sent as the RFC 8693 `actor_token` so the authorization server
       * names this agent in `act` from a token rather than from the client that authenticates. Called
       * on every request (bounded by the credential timeout); return a cached token, e.g.
       * `() => tokens.clientCredentials({ connection: 'idp', resource: AGENT_A })`.
       */
      actorToken?: () => string | { accessToken: string } | Promise<string | { accessToken: string }>;
      /** `actor_token_type` (default `urn:ietf:params:oauth:token-type:access_token`). */
      actorTokenType?: string;
    }
  | {
      type: 'awsSigV4';
      region: string;
      /** AWS service name, e.g. `s3`, `execute-api`, `dynamodb`. */
      service: string;
      credentials: AwsCredentials | (() => Promise<AwsCredentials>);
      /** Hash and sign the body (default true); `false` sends `x-amz-content-sha256: UNSIGNED-PAYLOAD`. */
      signPayload?: boolean;
    };

/**
 * A method + path pattern a tool allows (`:name` one segment, trailing `*` the rest). Paths are whole
 * URL paths as sent, not relative to `baseUrl`.
 *
 * @example
 * ```ts
 * const caps: ToolCapability[] = [{ method: 'GET', path: '/v1/charges/:id' }, { method: '*', path: '/v1/files/*' }];
 * ```
 */
export interface ToolCapability {
  method: string;
  path: string;
}

/**
 * A tool toolFetch may call, found by exact origin and base path (the longest base path wins, on a
 * segment boundary: `/api` does not cover `/apiary`).
 *
 * @example
 * ```ts
 * const tool: ToolDefinition = {
 *   name: 'stripe', baseUrl: 'https://api.stripe.com', auth: { type: 'apiKey', key: env.STRIPE_KEY },
 *   capabilities: [{ method: 'GET', path: '/v1/charges/:id' }],
 * };
 * ```
 */
export interface ToolDefinition {
  /** Unique name, used by policies and audit events. */
  name: string;
  /** `https://` origin plus optional base path (plain `http://` only for loopback hosts). */
  baseUrl: string;
  /** Credential injected on every request (default `{ type: 'none' }`). */
  auth?: ToolAuth;
  /** Allowed operations; none declared means all operations. */
  capabilities?: ToolCapability[];
  /** Send `X-End-User-ID` with the verified user id (default true). */
  forwardUser?: boolean;
  /**
   * Require a user in the context (default: true for `oauth2` and `tokenExchange`, false otherwise).
   * Without one, the request fails with `POLICY_DENIED` and nothing is sent. `false` is refused for
   * `oauth2` and `tokenExchange` tools (`CONFIG_INVALID`): their token is the user's.
   */
  perUser?: boolean;
  /**
   * Caller headers this tool accepts that toolFetch otherwise refuses with `REQUEST_INVALID`,
   * because they change what the tool does: method overrides (`X-HTTP-Method-Override`,
   * `X-Method-Override`, `X-HTTP-Method`) and target overrides (`X-Original-URL`, `X-Rewrite-URL`,
   * `X-Host`, `X-HTTP-Host-Override`). Case-insensitive.
   *
   * With a method override allowed and sent, its value must be a method, and the policy and the
   * capabilities must allow both the method sent and the overriding one (either may be what the
   * tool runs). Target overrides are not matched against capabilities: allow one only for a tool
   * whose server needs it. An approval binds the value of every allowed header that is sent.
   *
   * Any other name is refused (`CONFIG_INVALID`): credential and identity headers (`Authorization`,
   * `Cookie`, `X-End-User-ID`, `X-Amz-*`, `Forwarded`, `X-Forwarded-*`), hop-by-hop headers and
   * `Host` are never the caller's to set, and every other header is sent as given already.
   *
   * @example
   * ```ts
   * // an API that takes PATCH as POST + X-HTTP-Method-Override; both methods are declared
   * const tool: ToolDefinition = { name: 'files', baseUrl: 'https://files.example.com', allowHeaders: ['X-HTTP-Method-Override'],
   *   capabilities: [{ method: 'POST', path: '/v1/files/:id' }, { method: 'PATCH', path: '/v1/files/:id' }] };
   * ```
   */
  allowHeaders?: string[];
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[\x20-\x7e]*$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const nonEmpty = z.string().min(1);
const token = z.string().min(1).regex(/^[\x21-\x7e]+$/, 'must be visible ASCII');

// Not strict: credentials often come from an AWS SDK provider, whose result carries more fields
// (`expiration`, `credentialScope`, `accountId`); only these three are kept.
const credentialsSchema = z.object({
  accessKeyId: token,
  secretAccessKey: token,
  sessionToken: token.optional(),
});

const authSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('none') }),
  z.strictObject({
    type: z.literal('apiKey'),
    key: secretSchema(z.string().min(1).regex(/^[\x20-\x7e]+$/, 'must be printable ASCII')),
    header: z.string().regex(HEADER_NAME, 'must be a header name').optional(),
    scheme: z.string().regex(HEADER_VALUE, 'must be printable ASCII').optional(),
  }),
  z.strictObject({ type: z.literal('oauth2'), connection: nonEmpty }),
  z.strictObject({
    type: z.literal('clientCredentials'),
    connection: nonEmpty,
    scopes: z.array(nonEmpty).optional(),
    resource: nonEmpty.optional(),
  }),
  z.strictObject({
    type: z.literal('tokenExchange'),
    connection: nonEmpty,
    audience: nonEmpty.optional(),
    resource: nonEmpty.optional(),
    scopes: z.array(nonEmpty),
    actorToken: z.custom<() => string | { accessToken: string } | Promise<string | { accessToken: string }>>((v) => typeof v === 'function', 'must be a function').optional(),
    actorTokenType: nonEmpty.optional(),
  }),
  z.strictObject({ type: z.literal('enterprise'), connection: nonEmpty, idp: nonEmpty, scopes: z.array(nonEmpty).optional() }),
  z.strictObject({
    type: z.literal('awsSigV4'),
    region: z.string().regex(/^[a-z0-9-]{1,32}$/, 'must be an AWS region name'),
    service: z.string().regex(/^[a-z0-9-]{1,64}$/, 'must be an AWS service name'),
    credentials: z.union([
      credentialsSchema,
      z.custom<() => Promise<AwsCredentials>>((v) => typeof v === 'function', 'must be credentials or a function'),
    ]),
    signPayload: z.boolean().optional(),
  }),
]);

const toolSchema = z.strictObject({
  name: z.string().regex(NAME, 'must be 1-64 letters, digits, ".", "_" or "-"'),
  baseUrl: nonEmpty,
  auth: authSchema.optional(),
  capabilities: z.array(z.strictObject({ method: nonEmpty, path: nonEmpty })).optional(),
  forwardUser: z.boolean().optional(),
  perUser: z.boolean().optional(),
  allowHeaders: z
    .array(
      z
        .string()
        .refine((v) => ALLOWABLE_HEADERS.has(v.toLowerCase()), {
          message: `must be one of ${[...ALLOWABLE_HEADERS].join(', ')}: credential, identity, hop-by-hop and Host headers are never sent from the caller, and any other header is sent as given`,
        }),
    )
    .max(ALLOWABLE_HEADERS.size)
    .optional(),
});

/** @internal A validated tool with its precomputed origin and base path. */
export interface ResolvedTool {
  readonly name: string;
  readonly origin: string;
  /** Base path without trailing `/`; `''` for the whole origin. */
  readonly basePath: string;
  readonly auth: ToolAuth;
  readonly capabilities: ToolCapability[] | undefined;
  readonly forwardUser: boolean;
  readonly perUser: boolean;
  /** Lower-case names of the restricted headers the tool accepts. */
  readonly allowHeaders: ReadonlySet<string>;
  readonly index: number;
}

/** @internal Validate tool definitions (CONFIG_INVALID naming the field). */
export function resolveTools(tools: unknown): ResolvedTool[] {
  const parsed = parseOptions(z.array(toolSchema), tools, 'tools');
  const names = new Set<string>();
  const places = new Set<string>();
  return parsed.map((t, i) => {
    const field = `tools.${i}`;
    if (names.has(t.name)) throw configError(`${field}.name`, 'duplicate tool name');
    names.add(t.name);
    const url = requireSecureUrl(t.baseUrl, `${field}.baseUrl`);
    if (url.search !== '' || url.hash !== '' || t.baseUrl.includes('?') || t.baseUrl.includes('#')) {
      throw configError(`${field}.baseUrl`, 'must not have a query or fragment');
    }
    try {
      safeUrl(t.baseUrl);
    } catch {
      throw configError(`${field}.baseUrl`, 'has an unsafe path');
    }
    const basePath = url.pathname.replace(/\/+$/, '');
    const place = `${url.origin}${basePath}`;
    if (places.has(place)) throw configError(`${field}.baseUrl`, 'another tool has the same origin and base path');
    places.add(place);
    const auth = (t.auth ?? { type: 'none' }) as ToolAuth;
    if (t.perUser === false && (auth.type === 'oauth2' || auth.type === 'tokenExchange' || auth.type === 'enterprise')) {
      // The credential is the user's own token (or exchanged from it): there is no call without a user.
      throw configError(`${field}.perUser`, `cannot be false for an ${auth.type} tool, whose token is the user's (omit perUser)`);
    }
    return {
      name: t.name,
      origin: url.origin,
      basePath,
      auth,
      capabilities: t.capabilities,
      forwardUser: t.forwardUser ?? true,
      perUser: t.perUser ?? (auth.type === 'oauth2' || auth.type === 'tokenExchange' || auth.type === 'enterprise'),
      allowHeaders: new Set((t.allowHeaders ?? []).map((h) => h.toLowerCase())),
      index: i,
    };
  });
}

/** @internal Finds the tool of a URL: exact origin, then the longest base path on a segment boundary. */
export class ToolRegistry<T extends { origin: string; basePath: string }> {
  readonly #byOrigin = new Map<string, T[]>();

  constructor(tools: readonly T[]) {
    for (const tool of tools) {
      const list = this.#byOrigin.get(tool.origin);
      if (list === undefined) this.#byOrigin.set(tool.origin, [tool]);
      else list.push(tool);
    }
    // Longest base path first, each origin's list sorted once (stable: equal lengths keep their order).
    for (const list of this.#byOrigin.values()) list.sort((a, b) => b.basePath.length - a.basePath.length);
  }

  find(url: URL): T | undefined {
    const list = this.#byOrigin.get(url.origin);
    if (list === undefined) return undefined;
    const path = url.pathname;
    for (const tool of list) {
      const base = tool.basePath;
      if (base === '') return tool;
      if (path.startsWith(base) && (path.length === base.length || path.charCodeAt(base.length) === 0x2f)) return tool;
    }
    return undefined;
  }
}

/**
 * Build tool definitions from environment variables: `TOOL_<NAME>_URL` gives the base URL, an
 * optional `TOOL_<NAME>_API_KEY` an `apiKey` credential (with `TOOL_<NAME>_API_KEY_HEADER` and
 * `TOOL_<NAME>_API_KEY_SCHEME` to change the header and scheme). The tool name is `<NAME>`
 * lower-cased with `_` turned into `-`.
 *
 * @example
 * ```ts
 * // TOOL_WEATHER_URL=https://api.weather.example  TOOL_WEATHER_API_KEY=...  TOOL_WEATHER_API_KEY_HEADER=X-API-Key
 * const toolFetch = createToolFetch({ agent: { id: 'a' }, tools: toolsFromEnv(), policies: [{ agent: 'a', tool: 'weather' }] });
 * ```
 */
export function toolsFromEnv(env?: Record<string, string | undefined>): ToolDefinition[] {
  const source =
    env ?? ((globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {});
  const out: ToolDefinition[] = [];
  for (const key of Object.keys(source).sort()) {
    const m = /^TOOL_([A-Z0-9][A-Z0-9_]*?)_URL$/.exec(key);
    const value = source[key];
    if (m === null || value === undefined || value === '') continue;
    const prefix = `TOOL_${m[1]}`;
    const tool: ToolDefinition = { name: (m[1] as string).toLowerCase().replace(/_/g, '-'), baseUrl: value };
    const apiKey = source[`${prefix}_API_KEY`];
    if (apiKey !== undefined && apiKey !== '') {
      const header = source[`${prefix}_API_KEY_HEADER`];
      const scheme = source[`${prefix}_API_KEY_SCHEME`];
      tool.auth = {
        type: 'apiKey',
        key: apiKey,
        ...(header ? { header } : {}),
        ...(scheme !== undefined ? { scheme } : {}),
      };
    }
    out.push(tool);
  }
  return out;
}
