/**
 * bench/http: requests per second over loopback (autocannon, bounded runs) of
 *   bare Express · Express + agentAuth · Express + express-oauth2-jwt-bearer (the peer) ·
 *   Express + an async no-op middleware (what one promise hop alone costs) ·
 *   Express + a middleware that only runs the route inside an AgentContext (runWithContext)
 *   bare Hono · Hono + agentAuth · Hono + an async no-op middleware · Hono + runWithContext only
 * with the same RS256 key, the same JWKS server and the same token, all in one run.
 *
 * The "context only" rows are the floor for any middleware that keeps the contract (the handler runs
 * inside the context, across awaits): on Node 20 AsyncLocalStorage works through promise hooks, which
 * make every later promise of the request dearer. The servers of one framework share one process, so
 * once any of them has used the context the hooks are on for its bare server too (as in an app that
 * uses agent-iam on some routes only); a bare app that never uses AsyncLocalStorage is faster still.
 *
 * Each framework's servers run in a child process of their own, as an app runs one framework (and
 * `@hono/node-server` replaces the global `Request` and `Response` of its process), and autocannon
 * (this process) shares an event loop with neither. The JWKS
 * server and the token are made here, so both children verify the same token against the same keys. Prints req/s and the ratios; targets: Express + agentAuth ≥ the peer, and ≥ 0.85x bare
 * Express. Run: `npx tsx bench/http.ts` (9 interleaved rounds of 1 s per target by default: BENCH_ROUNDS, BENCH_SECONDS).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { MiddlewareHandler } from 'hono';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { median, record } from './report.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const WARMUP_SECONDS = 1;
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const AUDIENCE = 'https://api.bench.local';
const TARGETS = [
  'express-bare',
  'express-async-noop',
  'express-context-only',
  'express-agent-iam',
  'express-oauth2-jwt-bearer',
  'hono-bare',
  'hono-async-noop',
  'hono-context-only',
  'hono-agent-iam',
] as const;
type Target = (typeof TARGETS)[number];

type Autocannon = (options: { url: string; connections: number; duration: number; headers: Record<string, string> }) => Promise<{
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}>;

type Framework = 'express' | 'hono';
const frameworkOf = (target: Target): Framework => (target.startsWith('hono') ? 'hono' : 'express');

interface ServerInfo {
  ports: Partial<Record<Target, number>>;
}

const listen = async (server: Server): Promise<number> => {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
};

/** Child: one server per target of `framework`, verifying against the parent's JWKS server. */
async function serve(framework: Framework): Promise<void> {
  const issuer = process.env.BENCH_ISSUER as string;
  const { createVerifier } = await import('../src/inbound/verifier.js');
  const verifier = createVerifier({ providers: [{ issuer, jwksUri: `${issuer}jwks`, audiences: [AUDIENCE] }] });
  const ports = framework === 'express' ? await expressServers(issuer, verifier) : await honoServers(verifier);
  process.send?.({ ports } satisfies ServerInfo);
  // The parent brackets each measured run with a CPU reading of this (server) process.
  process.on('message', (message) => {
    if (message === 'cpu') {
      const { user, system } = process.cpuUsage();
      process.send?.({ cpuMicros: user + system });
    }
  });
}

type BenchVerifier = import('../src/inbound/verifier.js').Verifier;
const body = { ok: true };

async function expressServers(issuer: string, verifier: BenchVerifier): Promise<Partial<Record<Target, number>>> {
  const [{ default: express }, { auth }, { agentAuth }, { anonymousContext, runWithContext }] = await Promise.all([
    import('express'),
    import('express-oauth2-jwt-bearer'),
    import('../src/adapters/express.js'),
    import('../src/context.js'),
  ]);
  const expressApp = (middleware?: RequestHandler) => {
    const app = express();
    app.disable('x-powered-by');
    app.disable('etag');
    if (middleware !== undefined) app.use(middleware);
    app.get('/', (_req, res) => {
      res.json(body);
    });
    // express-oauth2-jwt-bearer reports failures through next(err): answer quietly, no stack logging.
    app.use((err: { status?: number }, _req: Request, res: Response, _next: NextFunction) => {
      res.status(err.status ?? 500).end();
    });
    return app;
  };
  return {
    'express-bare': await listen(createServer(expressApp())),
    // Reference: the cost of any middleware that finishes asynchronously (one promise hop, no work).
    'express-async-noop': await listen(createServer(expressApp((_req, _res, next) => void Promise.resolve().then(() => next())))),
    // Reference: only run the route inside a context, as agentAuth must (AsyncLocalStorage).
    'express-context-only': await listen(createServer(expressApp((_req, _res, next) => runWithContext(anonymousContext(), next)))),
    'express-agent-iam': await listen(createServer(expressApp(agentAuth(verifier)))),
    'express-oauth2-jwt-bearer': await listen(
      createServer(expressApp(auth({ issuer, jwksUri: `${issuer}jwks`, audience: AUDIENCE, tokenSigningAlg: 'RS256' }))),
    ),
  };
}

async function honoServers(verifier: BenchVerifier): Promise<Partial<Record<Target, number>>> {
  const [{ Hono }, { serve: honoServe }, { agentAuth }, { anonymousContext, runWithContext }] = await Promise.all([
    import('hono'),
    import('@hono/node-server'),
    import('../src/adapters/hono.js'),
    import('../src/context.js'),
  ]);
  const honoListen = async (middleware?: MiddlewareHandler): Promise<number> => {
    const app = new Hono();
    if (middleware !== undefined) app.use(middleware);
    app.get('/', (c) => c.json(body));
    const server = honoServe({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
    await once(server, 'listening');
    return (server.address() as AddressInfo).port;
  };
  return {
    'hono-bare': await honoListen(),
    // Hono answers a route with one handler without its middleware chain: any middleware loses that.
    'hono-async-noop': await honoListen(async (_c, next) => {
      await next();
    }),
    'hono-context-only': await honoListen((_c, next) => runWithContext(anonymousContext(), next)),
    'hono-agent-iam': await honoListen(agentAuth(verifier)),
  };
}

/** Parent: check every target answers 200 with the token (and the guarded ones 401 without), then measure. */
async function main(): Promise<void> {
  // autocannon ships no types: the few fields used here.
  const autocannonModule = 'autocannon';
  const { default: autocannon } = (await import(autocannonModule)) as { default: Autocannon };
  // The JWKS server and the token, shared by both children.
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'RS256', use: 'sig' };
  const jwksBody = JSON.stringify({ keys: [jwk] });
  const jwksServer = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(jwksBody);
  });
  const issuer = `http://127.0.0.1:${await listen(jwksServer)}/`;
  const token = await new SignJWT({ scope: 'bench:read', email: 'alice@example.com' })
    .setProtectedHeader({ alg: 'RS256', kid: 'bench-1', typ: 'at+jwt' })
    .setIssuer(issuer)
    .setAudience(AUDIENCE)
    .setSubject('alice')
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(privateKey);
  const children: Record<Framework, ChildProcess> = {
    express: fork(fileURLToPath(import.meta.url), ['--serve', 'express'], { stdio: 'inherit', env: { ...process.env, BENCH_ISSUER: issuer } }),
    hono: fork(fileURLToPath(import.meta.url), ['--serve', 'hono'], { stdio: 'inherit', env: { ...process.env, BENCH_ISSUER: issuer } }),
  };
  try {
    const ports: Partial<Record<Target, number>> = {};
    for (const child of Object.values(children)) Object.assign(ports, ((await once(child, 'message')) as [ServerInfo])[0].ports);
    const info = { ports: ports as Record<Target, number>, token };
    const headers = { authorization: `Bearer ${info.token}` };
    for (const target of TARGETS) {
      const url = `http://127.0.0.1:${info.ports[target]}/`;
      const ok = await fetch(url, { headers });
      if (ok.status !== 200) throw new Error(`${target}: expected 200 with the token, got ${ok.status}`);
      if (target.endsWith('agent-iam') || target.endsWith('bearer')) {
        const denied = await fetch(url);
        if (denied.status !== 401) throw new Error(`${target}: expected 401 without a token, got ${denied.status}`);
      }
    }

    const run = (target: Target, duration: number) =>
      autocannon({ url: `http://127.0.0.1:${info.ports[target]}/`, connections: CONNECTIONS, duration, headers });
    const serverCpu = async (target: Target): Promise<number> => {
      const child = children[frameworkOf(target)];
      const reply = once(child, 'message') as Promise<[{ cpuMicros: number }]>;
      child.send('cpu');
      return (await reply)[0].cpuMicros;
    };
    const rps: Record<Target, number[]> = Object.fromEntries(TARGETS.map((t) => [t, []])) as unknown as Record<Target, number[]>;
    const cpu: Record<Target, number[]> = Object.fromEntries(TARGETS.map((t) => [t, []])) as unknown as Record<Target, number[]>;
    const p99: Record<Target, number[]> = Object.fromEntries(TARGETS.map((t) => [t, []])) as unknown as Record<Target, number[]>;
    console.log(
      `bench/http: ${CONNECTIONS} connections, ${ROUNDS} interleaved rounds of ${SECONDS}s per target (after ${WARMUP_SECONDS}s warm-up), RS256, same token.\n` +
        'req/s and server CPU (µs of the server process per request) are medians of the rounds; a ratio or a difference of two targets is the median of\n' +
        'their per-round ratios or differences (the two ran seconds apart), which a machine that drifts between rounds moves less. CPU is steadier than req/s on a busy machine.\n',
    );
    for (const target of TARGETS) await run(target, WARMUP_SECONDS);
    for (let round = 0; round < ROUNDS; round++) {
      for (const target of TARGETS) {
        const before = await serverCpu(target);
        const result = await run(target, SECONDS);
        const after = await serverCpu(target);
        if (result.non2xx > 0 || result.errors > 0) throw new Error(`${target}: ${result.non2xx} non-2xx, ${result.errors} errors`);
        rps[target].push(result.requests.average);
        cpu[target].push((after - before) / Math.max(1, result.requests.total));
        p99[target].push(result.latency.p99);
      }
    }
    /** Median over the rounds of a per-round ratio of two series (the rounds of both ran seconds apart). */
    const paired = (x: number[], y: number[]) => median(x.map((value, i) => value / (y[i] as number)));
    const ratio = (a: Target, b: Target) => paired(rps[a], rps[b]);
    for (const target of TARGETS) {
      console.log(
        `${target.padEnd(28)} ${median(rps[target]).toFixed(0).padStart(7)} req/s   server CPU ${median(cpu[target]).toFixed(1).padStart(6)} µs/req   p99 ${median(p99[target])} ms`,
      );
    }
    const r = (a: Target, b: Target) => ratio(a, b).toFixed(2);
    const c = (a: Target, b: Target) => paired(cpu[a], cpu[b]).toFixed(2);
    console.log(`
ratios                                            req/s    server CPU per request
  Express + agentAuth / bare Express               ${r('express-agent-iam', 'express-bare')}x    ${c('express-agent-iam', 'express-bare')}x   (target: req/s ≥ 0.85x)
  Express + async no-op / bare Express             ${r('express-async-noop', 'express-bare')}x    ${c('express-async-noop', 'express-bare')}x   (floor for any async middleware)
  Express + context only / bare Express            ${r('express-context-only', 'express-bare')}x    ${c('express-context-only', 'express-bare')}x   (floor for a middleware that sets the context)
  Express + agentAuth / express-oauth2-jwt-bearer  ${r('express-agent-iam', 'express-oauth2-jwt-bearer')}x    ${c('express-agent-iam', 'express-oauth2-jwt-bearer')}x   (target: req/s ≥ 1.00x)
  express-oauth2-jwt-bearer / bare Express         ${r('express-oauth2-jwt-bearer', 'express-bare')}x    ${c('express-oauth2-jwt-bearer', 'express-bare')}x
  Hono + agentAuth / bare Hono                     ${r('hono-agent-iam', 'hono-bare')}x    ${c('hono-agent-iam', 'hono-bare')}x
  Hono + async no-op / bare Hono                   ${r('hono-async-noop', 'hono-bare')}x    ${c('hono-async-noop', 'hono-bare')}x   (floor for any middleware)
  Hono + context only / bare Hono                  ${r('hono-context-only', 'hono-bare')}x    ${c('hono-context-only', 'hono-bare')}x   (floor for a middleware that sets the context)
  Hono + agentAuth / Hono + context only           ${r('hono-agent-iam', 'hono-context-only')}x    ${c('hono-agent-iam', 'hono-context-only')}x   (what agentAuth itself costs)
  Express + agentAuth / Express + context only     ${r('express-agent-iam', 'express-context-only')}x    ${c('express-agent-iam', 'express-context-only')}x`);
    // Paired by round (the two targets ran seconds apart), so a machine that slows down or speeds up
    // between rounds moves both sides of a difference together.
    const extra = (a: Target, b: Target) => median(cpu[a].map((value, i) => value - (cpu[b][i] as number)));
    console.log(`
server CPU per request over the context-only floor: Express ${extra('express-agent-iam', 'express-context-only').toFixed(2)} µs, Hono ${extra('hono-agent-iam', 'hono-context-only').toFixed(2)} µs (target ≤ 3 µs)`);
    record({ id: 'express-agent-iam/bare', label: 'Express + `agentAuth` / bare Express (req/s)', value: ratio('express-agent-iam', 'express-bare'), target: { op: '>=', value: 0.9 } });
    record({ id: 'express-agent-iam/context-only', label: 'Express + `agentAuth` / Express + a middleware that only sets the context (req/s)', value: ratio('express-agent-iam', 'express-context-only'), target: { op: '>=', value: 0.95 } });
    record({ id: 'express-agent-iam/cpu-over-floor', label: 'Express: `agentAuth` server CPU per request over the context-only middleware', unit: 'µs', value: extra('express-agent-iam', 'express-context-only'), target: { op: '<=', value: 3 } });
    record({ id: 'express-agent-iam/peer', label: 'Express + `agentAuth` / Express + `express-oauth2-jwt-bearer` (req/s)', value: ratio('express-agent-iam', 'express-oauth2-jwt-bearer'), target: { op: '>=', value: 1 } });
    record({ id: 'express-context-only/bare', label: 'Express + context-only middleware / bare Express (req/s; the floor)', value: ratio('express-context-only', 'express-bare') });
    record({ id: 'hono-agent-iam/bare', label: 'Hono + `agentAuth` / bare Hono (req/s)', value: ratio('hono-agent-iam', 'hono-bare'), target: { op: '>=', value: 0.8 } });
    record({ id: 'hono-agent-iam/context-only', label: 'Hono + `agentAuth` / Hono + a middleware that only sets the context (req/s)', value: ratio('hono-agent-iam', 'hono-context-only'), target: { op: '>=', value: 0.95 } });
    record({ id: 'hono-agent-iam/cpu-over-floor', label: 'Hono: `agentAuth` server CPU per request over the context-only middleware', unit: 'µs', value: extra('hono-agent-iam', 'hono-context-only'), target: { op: '<=', value: 3 } });
    record({ id: 'hono-async-noop/bare', label: 'Hono + async no-op middleware / bare Hono (req/s; any middleware)', value: ratio('hono-async-noop', 'hono-bare') });
    record({ id: 'hono-context-only/bare', label: 'Hono + context-only middleware / bare Hono (req/s; the floor)', value: ratio('hono-context-only', 'hono-bare') });
  } finally {
    for (const child of Object.values(children)) child.kill();
    jwksServer.close();
  }
}

const serveAt = process.argv.indexOf('--serve');
if (serveAt >= 0) await serve(process.argv[serveAt + 1] === 'hono' ? 'hono' : 'express');
else await main();
