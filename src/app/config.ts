/**
 * Configuration of {@link createAgentIam}: one object, loadable from JSON with secrets taken from the
 * environment (`{ "env": "STRIPE_KEY" }`), so a JSON file never holds a secret.
 *
 * @module
 */
import type Keyv from 'keyv';
import type { AuditSink } from '../audit/events.js';
import { AgentIamError, isAgentIamError, configError } from '../errors.js';
import type { VerifierOptions } from '../inbound/verifier.js';
import type { ToolFetchOptions } from '../outbound/tool-fetch.js';
import type { ToolDefinition } from '../outbound/tools.js';
import type { ApprovalsOptions } from '../policy/approvals.js';
import type { PolicyRule } from '../policy/policies.js';
import type { KeyValueStore } from '../stores/store.js';
import type { TokenManagerOptions } from '../tokens/manager-api.js';
import type { ApprovalRoutesOptions } from '../http/approval-routes.js';
import type { ConsentRoutesOptions } from '../http/consent-routes.js';

/**
 * The configuration of {@link createAgentIam}. Every section is validated by the factory it feeds
 * (`createVerifier`, `createTokenManager`, `createApprovals`, `createToolFetch`, the routes); a
 * failure is `CONFIG_INVALID` whose `field` names the full path, e.g. `verifier.providers.0.jwksUri`.
 *
 * @example
 * ```ts
 * const config: AgentIamConfig = {
 *   agent: { id: 'support-agent' },
 *   verifier: { providers: [{ issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/jwks', audiences: ['support'] }] },
 *   tools: [{ name: 'stripe', baseUrl: 'https://api.stripe.com', auth: { type: 'apiKey', key: process.env.STRIPE_KEY! } }],
 *   policies: [{ agent: 'support-agent', tool: 'stripe' }],
 * };
 * ```
 */
export interface AgentIamConfig {
  /** The agent this process runs as; policies name it. */
  agent: { id: string };
  /** Inbound verification (`createVerifier` options); `audit` defaults to the top-level one. */
  verifier: VerifierOptions;
  /** The token manager (`createTokenManager` options); built only when given. */
  tokens?: TokenManagerOptions;
  /** Tools `toolFetch` may reach (default none). */
  tools?: ToolDefinition[];
  /** Policies of `toolFetch` (default none: every tool request is denied). */
  policies?: PolicyRule[];
  /**
   * Approvals (`createApprovals` options, or `true` for the defaults). Built when given, when a
   * policy has `effect: 'approval'`, or when `approvalRoutes` is set.
   */
  approvals?: boolean | ApprovalsOptions;
  /** Other `createToolFetch` options. */
  toolFetch?: Pick<ToolFetchOptions, 'fetch' | 'groupsClaim' | 'timeoutMs' | 'credentialTimeoutMs' | 'maxRedirects'>;
  /** Default store of the token manager, the approvals and the consent routes (default: in-memory). */
  store?: Keyv | KeyValueStore;
  /** Receives every audit event of every part. */
  audit?: AuditSink;
  /** Consent routes (`iam.expressRoutes()` / `iam.honoRoutes()`); needs `tokens`. */
  consentRoutes?: Omit<ConsentRoutesOptions, 'audit'>;
  /** Approval routes (`iam.expressRoutes()` / `iam.honoRoutes()`). */
  approvalRoutes?: ApprovalRoutesOptions;
}

/** The top-level keys of {@link AgentIamConfig}. */
export const CONFIG_KEYS: ReadonlySet<string> = new Set([
  'agent',
  'verifier',
  'tokens',
  'tools',
  'policies',
  'approvals',
  'toolFetch',
  'store',
  'audit',
  'consentRoutes',
  'approvalRoutes',
]);

/** Where secrets live in a configuration: these keys accept only `{ "env": "NAME" }` in JSON. */
const SECRET_KEYS = new Set(['clientSecret', 'secretAccessKey', 'sessionToken', 'encryptionKey', 'key']);
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,255}$/;

const invalid = configError;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function isEnvRef(v: unknown): v is { env: string } {
  return isPlainObject(v) && Object.keys(v).length === 1 && typeof v.env === 'string';
}

function defaultEnv(): Record<string, string | undefined> {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
}

/** Replace every `{ env }` reference; refuse a literal string where a secret belongs. */
function resolve(value: unknown, path: string, env: Record<string, string | undefined>, secret: boolean): unknown {
  if (isEnvRef(value)) {
    if (!ENV_NAME.test(value.env)) throw invalid(path, 'env must name an environment variable');
    const v = env[value.env];
    if (v === undefined || v === '') throw invalid(path, `environment variable ${value.env} is not set`);
    return v;
  }
  if (typeof value === 'string' && secret) throw invalid(path, 'a secret must be given as { "env": "NAME" }, never inline');
  if (Array.isArray(value)) return value.map((v, i) => resolve(v, path === '' ? String(i) : `${path}.${i}`, env, secret));
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === '__proto__' || k === 'constructor' || k === 'prototype') throw invalid(path === '' ? k : `${path}.${k}`, 'reserved key');
      out[k] = resolve(v, path === '' ? k : `${path}.${k}`, env, SECRET_KEYS.has(k));
    }
    return out;
  }
  return value;
}

/**
 * Load an {@link AgentIamConfig} from JSON text (or an already parsed object), replacing every
 * `{ "env": "NAME" }` with the value of that environment variable. Secrets (`clientSecret`, `key`,
 * `encryptionKey`, `secretAccessKey`, `sessionToken`) must be such references: a literal secret in
 * the JSON is refused, so the file can be committed. A missing variable, bad JSON or a literal
 * secret throws `CONFIG_INVALID` naming the field (never the value). The result is then validated
 * in full by {@link createAgentIam}; add code-only parts (audit sink, store, fetch) to it there.
 *
 * @param env - the environment (default `process.env` where there is one).
 * @example
 * ```ts
 * // agent-iam.json: { "agent": { "id": "support" }, "verifier": { ... },
 * //   "tools": [{ "name": "stripe", "baseUrl": "https://api.stripe.com", "auth": { "type": "apiKey", "key": { "env": "STRIPE_KEY" } } }] }
 * const config = loadAgentIamConfig(await readFile('agent-iam.json', 'utf8'));
 * const iam = createAgentIam({ ...config, audit: jsonLinesAudit(process.stdout) });
 * ```
 */
export function loadAgentIamConfig(input: string | object, env: Record<string, string | undefined> = defaultEnv()): AgentIamConfig {
  let value: unknown = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input) as unknown;
    } catch {
      throw invalid('(root)', 'not valid JSON');
    }
  }
  if (!isPlainObject(value)) throw invalid('(root)', 'must be a JSON object');
  for (const k of Object.keys(value)) if (!CONFIG_KEYS.has(k)) throw invalid(k, 'unknown option');
  return resolve(value, '', env, false) as AgentIamConfig;
}

/**
 * Run a factory; a `CONFIG_INVALID` it throws is re-thrown with its field under `prefix` (fields that
 * already start with `prefix` or one of `topLevel`, which are top-level config keys, are kept).
 */
export function within<T>(prefix: string, build: () => T, topLevel: readonly string[] = []): T {
  try {
    return build();
  } catch (e) {
    if (!isAgentIamError(e) || e.code !== 'CONFIG_INVALID') throw e;
    const inner = e.field;
    if (inner !== undefined && [prefix, ...topLevel].some((p) => inner === p || inner.startsWith(`${p}.`))) throw e;
    const field = inner === undefined || inner === '(root)' ? prefix : `${prefix}.${inner}`;
    const own = inner === undefined ? undefined : `Invalid option ${inner}: `;
    const detail = own !== undefined && e.message.startsWith(own) ? e.message.slice(own.length) : e.message;
    throw invalid(field, detail);
  }
}
