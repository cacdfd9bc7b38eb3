/**
 * Credential injection: each tool's auth compiled once into an injector that sets headers on the
 * outgoing request. Every failure is typed and nothing is sent: a credential source that throws or
 * hangs never leads to a request without its credential.
 *
 * @module
 */
import { AgentIamError, isAgentIamError, tokenEndpointUnavailable, type AgentIamErrorReason } from '../../errors.js';
import type { AgentContext } from '../../context.js';
import { withTimeout } from '../../lib/async.js';
import { secretReader } from '../../lib/secret.js';
import { DROP_REJECTED_TOKEN, RESOURCE_CHALLENGE, type AccessTokenResult, type TokenSource } from '../../tokens/types.js';
import type { AwsCredentials, ToolAuth } from '../tools.js';
import { queryRecord, s3Path } from './aws-request.js';
import type { SigV4Signer } from './sigv4.js';

/** @internal The request being prepared. */
export interface OutgoingRequest {
  method: string;
  url: URL;
  headers: Headers;
  /** Body bytes when they were read (approval, signed payload). */
  bodyBytes: Uint8Array | undefined;
  /** True when a body is sent that was not read into `bodyBytes` (a stream). */
  hasOpaqueBody: boolean;
  /**
   * Set by an injector that sent a cached service token: forgets exactly that token (for these
   * options, that subject) so the next call obtains a fresh one. Called when the tool rejects it.
   */
  dropToken?: () => void;
  /** Set by the `oauth2` injector: whose token was sent (for {@link Injector.onRejected} and {@link Injector.stepUp}). */
  account?: { userId: string; result: AccessTokenResult };
  /** Set by the `clientCredentials` injector: the scopes of the service token sent (for {@link Injector.stepUp}). */
  serviceScopes?: readonly string[];
  /** Set by toolFetch: false when the request must not go out without a credential (an approval was spent on it). */
  mayProbe?: boolean;
  /**
   * Set by the `oauth2` injector instead of a credential: the user has no account and the
   * connection's resource is asked first, as an MCP client does. Given the 401's
   * `WWW-Authenticate`, resolves the `CONSENT_REQUIRED` to throw.
   */
  probe?: (wwwAuthenticate: string | null) => Promise<AgentIamError>;
}

/** @internal */
export interface Injector {
  /** True when the injector needs the body bytes (signed SigV4 payload). */
  readonly needsBody: boolean;
  /** Header names this injector owns: callers can never set them. */
  readonly ownedHeaders: readonly string[];
  inject(request: OutgoingRequest, context: AgentContext | undefined): Promise<void> | void;
  /**
   * `oauth2`: the tool rejected the user's token (401). The first time the token is expired
   * (resolves undefined: send once more, a refresh follows); `again` (the new token was rejected
   * too) ends the account in needs_consent and resolves the error to throw.
   */
  onRejected?(request: OutgoingRequest, again: boolean): Promise<AgentIamError | undefined>;
  /**
   * The tool asked for more scopes (403 insufficient_scope). `oauth2`: resolves the
   * `CONSENT_REQUIRED` to throw (a URL for the granted and challenged scopes). `clientCredentials`:
   * resolves `'retry'` once the next token will be asked for the union (toolFetch sends once more).
   * Undefined when those are granted already or were asked for twice (the 403 then goes to the
   * caller as is).
   */
  stepUp?(request: OutgoingRequest, scopes: string[]): Promise<AgentIamError | 'retry' | undefined>;
}

/** @internal */
export interface InjectorOptions {
  tool: string;
  tokens: TokenSource | undefined;
  credentialTimeoutMs: number;
}

function unavailable(tool: string): AgentIamError {
  return tokenEndpointUnavailable(`Credential for tool ${tool} is unavailable`);
}

/** Run a credential source with a timeout; anything but an AgentIamError becomes a safe typed error. */
async function fromSource<T>(tool: string, ms: number, run: () => Promise<T>): Promise<T> {
  try {
    return await withTimeout(Promise.resolve().then(run), ms, () => unavailable(tool));
  } catch (error) {
    if (isAgentIamError(error)) throw error;
    throw unavailable(tool);
  }
}

const HEADER_TOKEN = /^[\x21-\x7e]{1,16384}$/;
function isHeaderToken(value: unknown): value is string {
  return typeof value === 'string' && HEADER_TOKEN.test(value);
}

function setBearer(headers: Headers, tool: string, result: AccessTokenResult): void {
  const token = result?.accessToken;
  if (!isHeaderToken(token)) throw unavailable(tool);
  headers.set('authorization', `Bearer ${token}`);
}

/** The agent's own token from an `actorToken` source: a visible-ASCII string, else the credential is unavailable. */
function actorTokenOf(tool: string, value: unknown): string {
  const token = typeof value === 'string' ? value : (value as { accessToken?: unknown } | null | undefined)?.accessToken;
  if (!isHeaderToken(token)) throw unavailable(tool);
  return token;
}

function requireUser(tool: string, context: AgentContext | undefined): string {
  const userId = context?.userId;
  if (typeof userId !== 'string' || userId === '') {
    throw new AgentIamError('POLICY_DENIED', `Tool ${tool} acts for a user and the request has no user context`);
  }
  return userId;
}

/** @internal Compile one tool's auth. */
export function createInjector(auth: ToolAuth, options: InjectorOptions): Injector {
  const { tool, credentialTimeoutMs: ms } = options;
  const tokens = options.tokens as TokenSource;
  switch (auth.type) {
    case 'none':
      return { needsBody: false, ownedHeaders: [], inject() {} };
    case 'apiKey': {
      const header = (auth.header ?? 'authorization').toLowerCase();
      const scheme = auth.scheme ?? (header === 'authorization' ? 'Bearer' : '');
      const withScheme = (key: string): string => (scheme === '' ? key : `${scheme} ${key}`);
      const reader = secretReader(auth.key, `tool ${tool}: apiKey`, (v) => /^[\x20-\x7e]+$/.test(v));
      const literal = reader.literal === undefined ? undefined : withScheme(reader.literal);
      if (literal !== undefined) {
        return {
          needsBody: false,
          ownedHeaders: [header],
          inject(request) {
            request.headers.set(header, literal);
          },
        };
      }
      return {
        needsBody: false,
        ownedHeaders: [header],
        async inject(request) {
          const key = await fromSource(tool, ms, () => reader.get());
          request.headers.set(header, withScheme(key));
          // A 401 to this key (rotated at the secret manager): the next call loads it again.
          request.dropToken = () => reader.refused(key);
        },
      };
    }
    case 'oauth2': {
      const connection = auth.connection;
      const stepUps = new Map<string, number>();
      return {
        needsBody: false,
        ownedHeaders: ['authorization'],
        async inject(request, context) {
          const userId = requireUser(tool, context);
          let result: AccessTokenResult;
          try {
            result = await fromSource(tool, ms, () => tokens.getAccessToken({ connection, userId }));
          } catch (error) {
            if (isAgentIamError(error) && error.code === 'CONSENT_REQUIRED') {
              const hooks = tokens[RESOURCE_CHALLENGE];
              if (request.mayProbe === true && hooks !== undefined && hooks.wantsProbe(connection)) {
                // Send without a credential: the resource's 401 says where its metadata is and which
                // scopes this call needs, and consent is then asked for exactly those.
                request.probe = async (header) => {
                  if (header !== null) hooks.challenge(connection, header);
                  else if (error.authorizationUrl !== undefined) return error;
                  return consentError(tool, connection, userId, tokens, ms, undefined);
                };
                return;
              }
              // The token manager already tried to build the URL (and says why it could not): pass it on.
              if (error.authorizationUrl !== undefined || error.reason !== undefined) throw error;
              throw await consentError(tool, connection, userId, tokens, ms, undefined);
            }
            throw error;
          }
          setBearer(request.headers, tool, result);
          // What a 401/403 answer needs; the handlers below are built once per tool, not per request.
          request.account = { userId, result };
        },
        async onRejected(request, again) {
          const account = request.account;
          const reject = tokens[DROP_REJECTED_TOKEN];
          if (account === undefined || typeof reject !== 'function') return undefined;
          await reject.call(tokens, { kind: 'account', options: { connection, userId: account.userId }, final: again }, account.result.accessToken);
          if (!again) return undefined;
          return consentError(tool, connection, account.userId, tokens, ms, undefined, undefined, 'the tool rejected the token again after a refresh');
        },
        async stepUp(request, challenged) {
          const account = request.account;
          if (account === undefined) return undefined;
          const granted = account.result.scopes ?? [];
          if (challenged.every((x) => granted.includes(x))) return undefined; // granted already: no loop
          const union = [...granted];
          for (const x of challenged) if (!union.includes(x)) union.push(x);
          // A server that never grants what its tool demands would loop consent forever: ask for
          // one scope set at most MAX_STEP_UPS times, then hand the 403 to the caller.
          const key = `${connection}\u0000${account.userId}\u0000${[...union].sort().join(' ')}`;
          const asked = stepUps.get(key) ?? 0;
          if (asked >= MAX_STEP_UPS) return undefined;
          if (stepUps.size >= 10_000) stepUps.clear();
          stepUps.set(key, asked + 1);
          return consentError(tool, connection, account.userId, tokens, ms, undefined, union, 'the tool needs more scopes');
        },
      };
    }
    case 'clientCredentials': {
      const opts = {
        connection: auth.connection,
        ...(auth.scopes !== undefined ? { scopes: auth.scopes } : {}),
        ...(auth.resource !== undefined ? { resource: auth.resource } : {}),
      };
      // Scopes a 403 challenge asked for, added to every later token of this tool (a service has one identity).
      let stepped: typeof opts & { scopes?: string[] } = opts;
      const stepUps = new Map<string, number>();
      return {
        needsBody: false,
        ownedHeaders: ['authorization'],
        async inject(request) {
          const options = stepped;
          const result = await fromSource(tool, ms, () => tokens.clientCredentials(options));
          setBearer(request.headers, tool, result);
          request.serviceScopes = result.scopes;
          if (typeof tokens[DROP_REJECTED_TOKEN] === 'function') {
            const token = result.accessToken;
            request.dropToken = () => tokens[DROP_REJECTED_TOKEN]?.({ kind: 'clientCredentials', options }, token);
          }
        },
        async stepUp(request, challenged) {
          const granted = request.serviceScopes;
          if (granted === undefined || challenged.every((x) => granted.includes(x))) return undefined;
          const union = [...granted];
          for (const x of challenged) if (!union.includes(x)) union.push(x);
          const key = [...union].sort().join(' ');
          const asked = stepUps.get(key) ?? 0;
          if (asked >= MAX_STEP_UPS) return undefined;
          if (stepUps.size >= 1000) stepUps.clear();
          stepUps.set(key, asked + 1);
          stepped = { ...opts, scopes: union };
          return 'retry';
        },
      };
    }
    case 'enterprise': {
      const { connection, idp } = auth;
      const scopes = auth.scopes;
      return {
        needsBody: false,
        ownedHeaders: ['authorization'],
        async inject(request, context) {
          requireUser(tool, context);
          const source = tokens.enterpriseToken;
          if (typeof source !== 'function') throw unavailable(tool);
          const options = { connection, idp, context: context as AgentContext, ...(scopes !== undefined ? { scopes } : {}) };
          const result = await fromSource(tool, ms, () => source.call(tokens, options));
          setBearer(request.headers, tool, result);
          if (typeof tokens[DROP_REJECTED_TOKEN] === 'function') {
            const token = result.accessToken;
            request.dropToken = () => tokens[DROP_REJECTED_TOKEN]?.({ kind: 'enterprise', options }, token);
          }
        },
      };
    }
    case 'tokenExchange': {
      const base = {
        connection: auth.connection,
        scopes: auth.scopes,
        ...(auth.audience !== undefined ? { audience: auth.audience } : {}),
        ...(auth.resource !== undefined ? { resource: auth.resource } : {}),
        ...(auth.actorTokenType !== undefined ? { actorTokenType: auth.actorTokenType } : {}),
      };
      const actorSource = auth.actorToken;
      return {
        needsBody: false,
        ownedHeaders: ['authorization'],
        async inject(request, context) {
          requireUser(tool, context);
          const ctx = context as AgentContext;
          const actorToken = actorSource === undefined ? undefined : await fromSource(tool, ms, async () => actorTokenOf(tool, await actorSource()));
          const options = actorToken === undefined ? { ...base, context: ctx } : { ...base, context: ctx, actorToken };
          const result = await fromSource(tool, ms, () => tokens.exchange(options));
          setBearer(request.headers, tool, result);
          if (typeof tokens[DROP_REJECTED_TOKEN] === 'function') {
            const token = result.accessToken;
            request.dropToken = () => tokens[DROP_REJECTED_TOKEN]?.({ kind: 'tokenExchange', options }, token);
          }
        },
      };
    }
    case 'awsSigV4': {
      const signPayload = auth.signPayload ?? true;
      // Loaded on first use: apps without an awsSigV4 tool never load @smithy/signature-v4.
      let signer: Promise<SigV4Signer> | undefined;
      const config = { region: auth.region, service: auth.service, signPayload };
      const loadSigner = (): Promise<SigV4Signer> =>
        (signer ??= import('./sigv4.js').then((m) => m.createSigV4Signer(config)));
      const source = auth.credentials;
      const s3 = auth.service === 's3';
      return {
        needsBody: signPayload,
        ownedHeaders: ['authorization'],
        async inject(request) {
          const credentials: AwsCredentials =
            typeof source === 'function'
              ? await fromSource(tool, ms, async () => {
                  const c = await source();
                  if (
                    !isHeaderToken(c?.accessKeyId) ||
                    !isHeaderToken(c.secretAccessKey) ||
                    (c.sessionToken !== undefined && !isHeaderToken(c.sessionToken))
                  ) {
                    throw unavailable(tool);
                  }
                  return c;
                })
              : source;
          let query: Record<string, string | string[]>;
          try {
            if (s3) {
              const path = s3Path(request.url.pathname);
              if (path !== request.url.pathname) request.url.pathname = path;
            }
            query = queryRecord(request.url.search);
          } catch {
            throw new AgentIamError('REQUEST_INVALID', 'URL has percent-encoding that is not UTF-8');
          }
          const headers: Record<string, string> = {};
          request.headers.forEach((v, k) => {
            headers[k] = v;
          });
          if (signPayload && request.hasOpaqueBody) throw unavailable(tool);
          let added: Record<string, string>;
          try {
            added = await (await loadSigner()).sign(
              {
                method: request.method,
                hostname: request.url.hostname,
                host: request.url.host,
                path: request.url.pathname,
                query,
                headers,
                ...(request.bodyBytes !== undefined ? { body: request.bodyBytes } : {}),
              },
              credentials,
            );
          } catch {
            throw unavailable(tool);
          }
          for (const [k, v] of Object.entries(added)) request.headers.set(k, v);
        },
      };
    }
  }
}

/** Consents asked for one scope set of one user before a 403 insufficient_scope goes to the caller. */
const MAX_STEP_UPS = 2;

async function consentError(
  tool: string,
  connection: string,
  userId: string,
  tokens: TokenSource,
  ms: number,
  known: string | undefined,
  scopes?: string[],
  why = 'needs the user to connect an account',
): Promise<AgentIamError> {
  let authorizationUrl = known;
  let reason: AgentIamErrorReason | undefined;
  if (authorizationUrl === undefined) {
    try {
      authorizationUrl = (await fromSource(tool, ms, () => tokens.startAuthorization({ connection, userId, ...(scopes !== undefined ? { scopes } : {}) }))).url;
    } catch (e) {
      authorizationUrl = undefined;
      reason = `authorization_start_failed:${isAgentIamError(e) ? e.code : 'error'}`;
    }
  }
  return new AgentIamError('CONSENT_REQUIRED', `Tool ${tool} ${why}`, {
    connection,
    ...(authorizationUrl !== undefined ? { authorizationUrl } : {}),
    ...(scopes !== undefined ? { scopes } : {}),
    ...(reason !== undefined ? { reason } : {}),
  });
}
