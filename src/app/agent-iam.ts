/**
 * `createAgentIam`: verifier, token manager, approvals, toolFetch and routes from one validated
 * configuration object.
 *
 * @module
 */
import { setupAdapter, type AgentAuthOptions } from '../http/middleware-core.js';
import type { AuditSink } from '../audit/events.js';
import { createVerifier, type Verifier } from '../inbound/verifier.js';
import { createToolFetch, type ToolFetch, type ToolFetchOptions } from '../outbound/tool-fetch.js';
import { createApprovals, type Approvals, type ApprovalsOptions } from '../policy/approvals.js';
import type { PolicyRule } from '../policy/policies.js';
import { createTokenManager } from '../tokens/token-manager.js';
import type { TokenManager } from '../tokens/manager-api.js';
import { z } from 'zod';
import { AgentIamError } from '../errors.js';
import { parseOptions } from '../lib/options.js';
import { createApprovalRoutes } from '../http/approval-routes.js';
import { CONFIG_KEYS, within, type AgentIamConfig } from './config.js';
import { createConsentRoutes, type ConsentRoutesOptions } from '../http/consent-routes.js';
import type { RouteHandler } from '../http/route-core.js';
import { nodeAgentAuth, type NodeMiddleware } from '../http/node-middleware.js';
import { honoAgentAuth, type HonoMiddleware } from '../http/web-middleware.js';
import { nodeRoutes } from '../http/node-routes.js';
import { honoRoutes } from '../http/web-routes.js';

/**
 * Everything {@link createAgentIam} builds.
 *
 * @example
 * ```ts
 * app.use('/api', iam.express());
 * app.get('/api/charges', async (req, res) => res.json(await (await iam.toolFetch('https://api.stripe.com/v1/charges')).json()));
 * ```
 */
export interface AgentIam {
  /** The agent id from the configuration. */
  readonly agentId: string;
  readonly verifier: Verifier;
  /** The token manager, when `tokens` is configured. */
  readonly tokens: TokenManager | undefined;
  /** The approvals, when configured (or needed by a policy or by `approvalRoutes`). */
  readonly approvals: Approvals | undefined;
  readonly toolFetch: ToolFetch;
  /** The audit sink every part reports to. */
  readonly audit: AuditSink | undefined;
  /**
   * `agentAuth` for Express (and any Node `(req, res, next)` server): verifies the bearer token, sets
   * `req.agentContext` and runs the rest of the chain in the context. Same behaviour as `agentAuth`
   * from `agent-iam/express`.
   */
  express(options?: AgentAuthOptions): NodeMiddleware;
  /** `agentAuth` for Hono: sets `c.get('agentContext')`. Same behaviour as `agentAuth` from `agent-iam/hono`. */
  hono(options?: AgentAuthOptions): HonoMiddleware;
  /** The configured consent and approval routes as Express middleware (mount after `iam.express()`). */
  expressRoutes(): NodeMiddleware;
  /** The configured consent and approval routes as Hono middleware (mount after `iam.hono()`). */
  honoRoutes(): HonoMiddleware;
}

const section = z.custom<object>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), 'must be an object');
const configSchema = z.strictObject({
  agent: z.strictObject({ id: z.string().min(1, 'must be a non-empty string') }),
  verifier: section,
  tokens: section.optional(),
  tools: z.array(z.unknown()).optional(),
  policies: z.array(z.unknown()).optional(),
  approvals: z.union([z.boolean(), section]).optional(),
  toolFetch: section.optional(),
  store: section.optional(),
  audit: z.custom<AuditSink>((v) => typeof v === 'function' || typeof (v as { write?: unknown })?.write === 'function', 'must be a function or have write()').optional(),
  consentRoutes: section.optional(),
  approvalRoutes: section.optional(),
});

function needsApprovals(config: AgentIamConfig): boolean {
  if (config.approvals !== undefined && config.approvals !== false) return true;
  if (config.approvalRoutes !== undefined) return true;
  return Array.isArray(config.policies) && config.policies.some((p: PolicyRule | undefined) => p?.effect === 'approval');
}

/**
 * Build the verifier, token manager, approvals and toolFetch of an agent from one configuration
 * object (see {@link loadAgentIamConfig} to read it from JSON with secrets from the environment).
 * Everything is validated now: a bad option throws `CONFIG_INVALID` whose `field` names its full
 * path (`tokens.connections.0.redirectUri`).
 *
 * The root entry imports neither express nor hono: `iam.express()` and `iam.hono()` are built from
 * the same framework-free pieces as `agent-iam/express` and `agent-iam/hono` and behave the same.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import { createAgentIam, loadAgentIamConfig } from 'agent-iam';
 *
 * const iam = createAgentIam(loadAgentIamConfig(await readFile('agent-iam.json', 'utf8')));
 * const app = express();
 * app.use(iam.express());
 * app.use(iam.expressRoutes());   // /oauth/connect/:connection, /oauth/callback, /approvals …
 * app.get('/charges', async (req, res) => res.json(await (await iam.toolFetch('https://api.stripe.com/v1/charges')).json()));
 * ```
 */
export function createAgentIam(config: AgentIamConfig): AgentIam {
  if (typeof config === 'object' && config !== null && !Array.isArray(config)) {
    for (const k of Object.keys(config)) {
      if (!CONFIG_KEYS.has(k)) throw new AgentIamError('CONFIG_INVALID', `Invalid option ${k}: unknown option`, { field: k });
    }
  }
  // The shape of each section here; each factory then validates its own section in full.
  const checked = parseOptions(configSchema, config);
  const agentId = checked.agent.id;
  const audit = config.audit;
  const store = config.store;

  const verifierOptions = config.verifier;
  const verifier = within('verifier', () =>
    createVerifier(audit !== undefined && verifierOptions.audit === undefined ? { ...verifierOptions, audit } : verifierOptions),
  );

  let tokens: TokenManager | undefined;
  if (config.tokens !== undefined) {
    const options = { ...config.tokens };
    if (options.audit === undefined && audit !== undefined) options.audit = audit;
    if (options.store === undefined && store !== undefined) options.store = store;
    tokens = within('tokens', () => createTokenManager(options));
  }

  let approvals: Approvals | undefined;
  if (needsApprovals(config)) {
    const a = config.approvals;
    const options: ApprovalsOptions = typeof a === 'object' && a !== null ? { ...a } : {};
    if (options.audit === undefined && audit !== undefined) options.audit = audit;
    if (options.store === undefined && store !== undefined) options.store = store;
    approvals = within('approvals', () => createApprovals(options));
  }

  const fetchOptions: ToolFetchOptions = {
    ...(config.toolFetch ?? {}),
    agent: { id: agentId },
    tools: config.tools ?? [],
    policies: config.policies ?? [],
  };
  if (tokens !== undefined) fetchOptions.tokens = tokens;
  if (approvals !== undefined) fetchOptions.approvals = approvals;
  if (audit !== undefined) fetchOptions.audit = audit;
  const toolFetch = within('toolFetch', () => createToolFetch(fetchOptions), ['tools', 'policies', 'agent']);

  const routes: RouteHandler[] = [];
  if (config.consentRoutes !== undefined) {
    if (tokens === undefined) throw new AgentIamError('CONFIG_INVALID', 'Invalid option consentRoutes: needs tokens', { field: 'consentRoutes' });
    const options: ConsentRoutesOptions = { ...config.consentRoutes };
    if (audit !== undefined) options.audit = audit;
    if (options.store === undefined && store !== undefined) options.store = store;
    const ttl = config.tokens?.stateTtlSeconds;
    if (options.stateTtlSeconds === undefined && typeof ttl === 'number') options.stateTtlSeconds = ttl;
    const manager = tokens;
    routes.push(within('consentRoutes', () => createConsentRoutes(manager, options)));
  }
  if (config.approvalRoutes !== undefined && approvals !== undefined) {
    const service = approvals;
    const options = config.approvalRoutes;
    routes.push(within('approvalRoutes', () => createApprovalRoutes(service, options)));
  }

  function noRoutes(): AgentIamError {
    return new AgentIamError('CONFIG_INVALID', 'Invalid option consentRoutes: configure consentRoutes or approvalRoutes to serve routes', { field: 'consentRoutes' });
  }

  return Object.freeze({
    agentId,
    verifier,
    tokens,
    approvals,
    toolFetch,
    audit,
    express(options?: AgentAuthOptions): NodeMiddleware {
      return nodeAgentAuth(setupAdapter(verifier, options));
    },
    hono(options?: AgentAuthOptions): HonoMiddleware {
      return honoAgentAuth(setupAdapter(verifier, options));
    },
    expressRoutes(): NodeMiddleware {
      if (routes.length === 0) throw noRoutes();
      return nodeRoutes(...routes);
    },
    honoRoutes(): HonoMiddleware {
      if (routes.length === 0) throw noRoutes();
      return honoRoutes(...routes);
    },
  });
}
