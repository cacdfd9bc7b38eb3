/**
 * One replica of an agent, as its own OS process (forked by test/replicas/harness.ts): its own
 * token manager, approvals and toolFetch, on the shared Redis or PostgreSQL store.
 *
 * Messages in: `{ type: 'init', config }`, then `{ type: 'tokens', until }` (call getAccessToken for
 * random users until `until`) or `{ type: 'fire', trial, at }` (send the approved request at `at`).
 * Messages out: `{ type: 'ready' }`, `{ type: 'tokens-done', result }`, `{ type: 'fired', trial, outcome }`.
 *
 * `config.breaks` deliberately breaks one guarantee of the store, to show the suite catches it:
 * `nx` (setIfAbsent always succeeds), `owner` (deleteIfOwner ignores the owner), `cas`
 * (compareAndSet is a plain set).
 */
import { createApprovals, createToolFetch, createTokenManager, type AgentContext, type KeyValueStore, type Store } from '../../src/index.js';
import { redisStore } from '../../src/redis/index.js';
import { postgresStore } from '../../src/postgres/index.js';
import type { WorkerConfig, TokensResult } from './harness.js';

let config: WorkerConfig;
let tokens: ReturnType<typeof createTokenManager>;
let toolFetch: ReturnType<typeof createToolFetch>;
const refreshOutcomes = { allow: 0, error: {} as Record<string, number> };

function broken(store: Store, breaks: WorkerConfig['breaks']): Store {
  if (breaks === undefined) return store;
  const out = Object.create(store) as Store & Record<string, unknown>;
  const b = store as Store;
  if (breaks === 'nx') out.setIfAbsent = async (k: string, v: unknown, t?: number) => (await b.set(k, v, t), true);
  if (breaks === 'owner') out.deleteIfOwner = (k: string) => b.delete(k);
  if (breaks === 'cas') out.compareAndSet = async (k: string, _v: string | null, value: unknown, t?: number) => (await b.set(k, value, t), true);
  for (const name of ['get', 'set', 'delete', 'getVersioned', 'consume', 'indexAdd', 'indexMembers', 'indexRemove', 'setIfAbsent', 'compareAndSet', 'deleteIfOwner'] as const) {
    if (!Object.prototype.hasOwnProperty.call(out, name)) (out as Record<string, unknown>)[name] = (b[name] as (...a: unknown[]) => unknown).bind(b);
  }
  Object.defineProperty(out, 'atomic', { value: true });
  return out;
}

function makeStore(): KeyValueStore {
  const s = config.store === 'redis' ? redisStore({ url: config.url }) : postgresStore({ url: config.url, poolOptions: { max: 4 } });
  return broken(s, config.breaks);
}

function context(userId: string): AgentContext {
  return { userId, subject: userId, issuer: 'test', scopes: [], claims: {}, actorChain: [], requestId: `r-${process.pid}`, authenticated: true };
}

async function runTokens(until: number): Promise<TokensResult> {
  const result: TokensResult = { ok: 0, errors: {}, maxLatencyMs: 0, refreshAllow: 0, refreshErrors: {}, tokensSeen: {} };
  const seen = new Map<string, Set<string>>();
  const loop = async (): Promise<void> => {
    while (Date.now() < until) {
      const user = config.users[Math.floor(Math.random() * config.users.length)]!;
      const t = Date.now();
      try {
        const r = await tokens.getAccessToken({ connection: 'corp', userId: user });
        result.ok++;
        let set = seen.get(user);
        if (set === undefined) seen.set(user, (set = new Set()));
        set.add(r.accessToken.slice(-16));
      } catch (e) {
        const code = (e as { code?: string }).code ?? (e as Error).name;
        result.errors[code] = (result.errors[code] ?? 0) + 1;
        await new Promise((r) => setTimeout(r, 20));
      }
      result.maxLatencyMs = Math.max(result.maxLatencyMs, Date.now() - t);
      await new Promise((r) => setTimeout(r, Math.random() * config.pauseMs));
    }
  };
  await Promise.all(Array.from({ length: config.concurrency }, loop));
  result.refreshAllow = refreshOutcomes.allow;
  result.refreshErrors = refreshOutcomes.error;
  for (const [u, set] of seen) result.tokensSeen[u] = [...set];
  return result;
}

async function fire(trial: number, at: number): Promise<string> {
  await new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));
  try {
    const res = await toolFetch(`${config.toolOrigin}/v1/refunds/${trial}`, { method: 'POST', body: JSON.stringify({ amount: 100, trial }), headers: { 'content-type': 'application/json' }, context: context('alice') });
    await res.arrayBuffer();
    return `status:${res.status}`;
  } catch (e) {
    const err = e as { code?: string; approvalId?: string };
    return err.code === 'APPROVAL_REQUIRED' ? `pending:${err.approvalId ?? ''}` : `error:${err.code ?? String(e)}`;
  }
}

process.on('message', (msg: { type: string; config?: WorkerConfig; until?: number; trial?: number; at?: number }) => {
  void (async () => {
    if (msg.type === 'init') {
      config = msg.config!;
      const store = makeStore();
      tokens = createTokenManager({
        store,
        encryptionKey: config.encryptionKey,
        connections: [config.connection],
        refreshSkewSeconds: config.refreshSkewSeconds,
        storeTimeoutMs: config.storeTimeoutMs,
        timeoutMs: config.timeoutMs,
        audit: (e) => {
          if (e.type !== 'token.refresh') return;
          if (e.decision === 'allow') refreshOutcomes.allow++;
          else refreshOutcomes.error[e.code ?? 'unknown'] = (refreshOutcomes.error[e.code ?? 'unknown'] ?? 0) + 1;
        },
      });
      const approvals = createApprovals({ store, timeoutMs: config.storeTimeoutMs });
      toolFetch = createToolFetch({
        agent: { id: 'refund-agent' },
        tools: [{ name: 'payments', baseUrl: config.toolOrigin, auth: { type: 'none' } }],
        policies: [{ agent: 'refund-agent', tool: 'payments', effect: 'approval' }],
        approvals,
      });
      process.send!({ type: 'ready' });
    } else if (msg.type === 'tokens') {
      process.send!({ type: 'tokens-done', result: await runTokens(msg.until!) });
    } else if (msg.type === 'fire') {
      process.send!({ type: 'fired', trial: msg.trial, outcome: await fire(msg.trial!, msg.at!) });
    } else if (msg.type === 'exit') {
      process.exit(0);
    }
  })().catch((e: unknown) => {
    process.send!({ type: 'crash', error: String((e as Error)?.stack ?? e) });
  });
});
process.on('uncaughtException', (e) => {
  process.send?.({ type: 'crash', error: `uncaught: ${String(e?.stack ?? e)}` });
});
process.on('unhandledRejection', (e) => {
  process.send?.({ type: 'crash', error: `unhandled: ${String((e as Error)?.stack ?? e)}` });
});
