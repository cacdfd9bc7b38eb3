/**
 * Several replicas of one agent on one shared store, as separate OS processes (test/replicas/worker.ts),
 * against the real test identity provider (oidc-provider, refresh-token rotation with reuse
 * detection: a rotated refresh token presented again revokes the whole grant).
 *
 * Shared by test/replicas/*.test.ts (CI-sized, asserted) and bench/replicas.ts (longer, printed).
 * What is measured never trusts the SDK's own view: accounts lost are read back from the store at the
 * end, refreshes are counted at the authorization server, and the tool counts the requests it got.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createApprovals, createToolFetch, createTokenManager, generateEncryptionKey, type ConnectionConfig, type TokenManager } from '../../src/index.js';
import { redisStore } from '../../src/redis/index.js';
import { postgresStore } from '../../src/postgres/index.js';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';

export type StoreKind = 'redis' | 'postgres';
export type Break = 'nx' | 'owner' | 'cas';

export interface WorkerConfig {
  store: StoreKind;
  url: string;
  encryptionKey: string;
  connection: ConnectionConfig;
  users: string[];
  refreshSkewSeconds: number;
  storeTimeoutMs: number;
  timeoutMs: number;
  concurrency: number;
  /** Random pause between one replica loop's calls, ms (sustained load, not synchronized bursts). */
  pauseMs: number;
  toolOrigin: string;
  breaks?: Break;
}

export interface TokensResult {
  ok: number;
  errors: Record<string, number>;
  maxLatencyMs: number;
  refreshAllow: number;
  refreshErrors: Record<string, number>;
  /** Last 16 characters of every distinct access token seen, per user. */
  tokensSeen: Record<string, string[]>;
}

const REDIRECT = 'http://127.0.0.1:9/callback';
const workerFile = fileURLToPath(new URL('./worker.ts', import.meta.url));

export interface Replicas {
  idp: TestIdentityProvider;
  config: WorkerConfig;
  workers: ChildProcess[];
  /** A token manager of the test itself, on the same store. */
  tokens: TokenManager;
  tool: { origin: string; hits: Map<string, number> };
  accessTokenTtl: number;
  close(): Promise<void>;
}

export interface ReplicaOptions {
  store: StoreKind;
  url: string;
  processes: number;
  users: number;
  /** Access-token lifetime at the IdP, seconds. */
  accessTokenTtl?: number;
  refreshSkewSeconds?: number;
  storeTimeoutMs?: number;
  timeoutMs?: number;
  concurrency?: number;
  pauseMs?: number;
  breaks?: Break;
}

function once<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { type: string; error?: string }): void => {
      if (m.type === 'crash') {
        child.off('message', onMessage);
        reject(new Error(`replica crashed: ${m.error}`));
      } else if (m.type === type) {
        child.off('message', onMessage);
        resolve(m as T);
      }
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`replica exited with ${code} while waiting for ${type}`)));
  });
}

/** Start the IdP, the tool, connect every user, and fork the replicas (each ready). */
export async function startReplicas(o: ReplicaOptions): Promise<Replicas> {
  const idp = await createTestIdentityProvider({ accessTokenTtl: o.accessTokenTtl ?? 3, refreshTokenRotation: true });
  const reg = await idp.registerClient({ redirect_uris: [REDIRECT] });
  const connection: ConnectionConfig = { id: 'corp', issuer: idp.issuer, clientId: reg.client_id, clientSecret: reg.client_secret as string, redirectUri: REDIRECT, scopes: ['openid', 'read'] };

  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    hits.set(req.url ?? '', (hits.get(req.url ?? '') ?? 0) + 1);
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"refunded":true}'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const toolOrigin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const config: WorkerConfig = {
    store: o.store,
    url: o.url,
    encryptionKey: generateEncryptionKey(),
    connection,
    users: Array.from({ length: o.users }, (_, i) => `user-${i}`),
    refreshSkewSeconds: o.refreshSkewSeconds ?? 1,
    storeTimeoutMs: o.storeTimeoutMs ?? 3000,
    timeoutMs: o.timeoutMs ?? 5000,
    concurrency: o.concurrency ?? 8,
    pauseMs: o.pauseMs ?? 10,
    toolOrigin,
    ...(o.breaks !== undefined ? { breaks: o.breaks } : {}),
  };
  const store = o.store === 'redis' ? redisStore({ url: o.url }) : postgresStore({ url: o.url, poolOptions: { max: 4 } });
  const tokens = createTokenManager({ store, encryptionKey: config.encryptionKey, connections: [connection], refreshSkewSeconds: config.refreshSkewSeconds });
  // Consent for every user, ten at a time.
  const queue = [...config.users];
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      for (let u = queue.shift(); u !== undefined; u = queue.shift()) {
        const { url } = await tokens.startAuthorization({ connection: 'corp', userId: u });
        await tokens.completeAuthorization(await idp.authorize(url, { userId: u }));
      }
    }),
  );

  const workers = Array.from({ length: o.processes }, () =>
    fork(workerFile, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, NODE_OPTIONS: '' } }),
  );
  await Promise.all(
    workers.map((w) => {
      const ready = once(w, 'ready');
      w.send({ type: 'init', config });
      return ready;
    }),
  );
  return {
    idp,
    config,
    workers,
    tokens,
    tool: { origin: toolOrigin, hits },
    accessTokenTtl: o.accessTokenTtl ?? 3,
    async close() {
      for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL');
      await new Promise<void>((r) => server.close(() => r()));
      await idp.close();
      await (store as { close?: () => Promise<void> }).close?.();
    },
  };
}

export interface TokenLoadResult {
  durationMs: number;
  calls: number;
  errors: Record<string, number>;
  maxLatencyMs: number;
  /** Refreshes the authorization server received. */
  refreshesAtServer: number;
  /** Refreshes the replicas saw succeed / fail, by code. */
  refreshAllow: number;
  refreshErrors: Record<string, number>;
  /** Accounts not `active` at the end (read back from the store). */
  lost: string[];
  /** The most refreshes one account can need in this run: one per `ttl - skew` seconds, plus one. */
  idealMaxPerAccount: number;
  /** Distinct access tokens per account seen by all replicas, the most of any account. */
  maxTokensPerAccount: number;
}

/** Every replica calls getAccessToken for random users for `durationMs`; `during` runs meanwhile (faults). */
export async function runTokenLoad(r: Replicas, durationMs: number, during?: () => Promise<void>): Promise<TokenLoadResult> {
  r.idp.resetStats();
  const started = Date.now();
  const until = started + durationMs;
  const results = r.workers.map((w) => {
    const done = once<{ result: TokensResult }>(w, 'tokens-done');
    w.send({ type: 'tokens', until });
    return done;
  });
  if (during !== undefined) await during();
  const all = (await Promise.all(results)).map((m) => m.result);
  const durationReal = Date.now() - started;
  const errors: Record<string, number> = {};
  const refreshErrors: Record<string, number> = {};
  const perUser = new Map<string, Set<string>>();
  for (const x of all) {
    for (const [k, v] of Object.entries(x.errors)) errors[k] = (errors[k] ?? 0) + v;
    for (const [k, v] of Object.entries(x.refreshErrors)) refreshErrors[k] = (refreshErrors[k] ?? 0) + v;
    for (const [u, list] of Object.entries(x.tokensSeen)) {
      let set = perUser.get(u);
      if (set === undefined) perUser.set(u, (set = new Set()));
      for (const t of list) set.add(t);
    }
  }
  // Lost: the account is no longer usable (revoked grant, needs_consent, gone). An access token
  // past `exp` is not lost as long as its refresh token still works, so ask for a token.
  const lost: string[] = [];
  for (const u of r.config.users) {
    const a = await r.tokens.getAccount({ connection: 'corp', userId: u });
    if (a === undefined || a.status === 'revoked' || a.status === 'needs_consent') {
      lost.push(`${u}:${a?.status ?? 'missing'}`);
      continue;
    }
    try {
      await r.tokens.getAccessToken({ connection: 'corp', userId: u });
    } catch (e) {
      lost.push(`${u}:${(e as { code?: string }).code ?? 'error'}`);
    }
  }
  const period = (r.accessTokenTtl - r.config.refreshSkewSeconds) * 1000;
  return {
    durationMs: durationReal,
    calls: all.reduce((a, x) => a + x.ok + Object.values(x.errors).reduce((p, q) => p + q, 0), 0),
    errors,
    maxLatencyMs: Math.max(...all.map((x) => x.maxLatencyMs)),
    refreshesAtServer: r.idp.stats.token.refresh_token ?? 0,
    refreshAllow: all.reduce((a, x) => a + x.refreshAllow, 0),
    refreshErrors,
    lost,
    idealMaxPerAccount: Math.ceil(durationReal / period) + 1,
    maxTokensPerAccount: Math.max(0, ...[...perUser.values()].map((s) => s.size)),
  };
}

export interface ApprovalTrialsResult {
  trials: number;
  /** How many requests reached the tool, per trial. */
  reached: number[];
  /** Trials where the tool got the request other than exactly once. */
  wrong: number;
  /** Distinct pending approvals the replicas were given for one request before approval (should be 1). */
  maxPendingIds: number;
  outcomes: Record<string, number>;
}

/**
 * `trials` times: the test creates a pending approval for a request, approves it once (single use),
 * then every replica fires the identical request at the same instant. Exactly one may reach the tool.
 * Before approval, every replica asks at once too: they must all be given the same pending approval.
 */
export async function runApprovalTrials(r: Replicas, trials: number): Promise<ApprovalTrialsResult> {
  const store = r.config.store === 'redis' ? redisStore({ url: r.config.url }) : postgresStore({ url: r.config.url, poolOptions: { max: 4 } });
  const approvals = createApprovals({ store });
  const fireAll = async (trial: number): Promise<string[]> => {
    const at = Date.now() + 40;
    const fired = r.workers.map((w) => {
      const done = new Promise<string>((resolve, reject) => {
        const onMessage = (m: { type: string; trial?: number; outcome?: string; error?: string }): void => {
          if (m.type === 'fired' && m.trial === trial) {
            w.off('message', onMessage);
            resolve(m.outcome!);
          } else if (m.type === 'crash') reject(new Error(m.error));
        };
        w.on('message', onMessage);
      });
      w.send({ type: 'fire', trial, at });
      return done;
    });
    return Promise.all(fired);
  };
  const reached: number[] = [];
  const outcomes: Record<string, number> = {};
  let maxPendingIds = 0;
  try {
    for (let t = 0; t < trials; t++) {
      // All replicas ask at once: one pending approval for the one request.
      const first = await fireAll(t);
      const ids = new Set(first.filter((x) => x.startsWith('pending:')).map((x) => x.slice(8)));
      maxPendingIds = Math.max(maxPendingIds, ids.size);
      const pending = await approvals.list({ status: 'pending' });
      for (const p of pending) if (p.summary.path === `/v1/refunds/${t}`) await approvals.approve(p.id, { approver: 'human@example.com' });
      const second = await fireAll(t);
      for (const x of second) {
        const k = x.replace(/:apr_.*/, '');
        outcomes[k] = (outcomes[k] ?? 0) + 1;
      }
      reached.push(r.tool.hits.get(`/v1/refunds/${t}`) ?? 0);
    }
  } finally {
    await (store as { close?: () => Promise<void> }).close?.();
  }
  return { trials, reached, wrong: reached.filter((n) => n !== 1).length, maxPendingIds, outcomes };
}

/** PIDs of the server listening on `port`: redis-server, or a PostgreSQL postmaster and its backends. */
export function serverPids(kind: StoreKind, port: number): number[] {
  const pgrep = (args: string[]): number[] => {
    try {
      return execFileSync('pgrep', args).toString().split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  if (kind === 'redis') return pgrep(['-f', `redis-server 127.0.0.1:${port}`]);
  const masters = pgrep(['-f', `postgres -D .* -p ${port} `]).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres';
    } catch {
      return false;
    }
  });
  return [...masters, ...masters.flatMap((m) => pgrep(['-P', String(m)]))];
}

/** Freeze the server (SIGSTOP) for `ms`, then let it go on (SIGCONT). */
export async function stall(kind: StoreKind, port: number, ms: number): Promise<number> {
  const pids = serverPids(kind, port);
  for (const pid of pids) process.kill(pid, 'SIGSTOP');
  await new Promise((r) => setTimeout(r, ms));
  for (const pid of serverPids(kind, port)) process.kill(pid, 'SIGCONT');
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      /* gone */
    }
  }
  return pids.length;
}
