/**
 * What `agentAuth` itself costs a request on a seen token, in process (no sockets, so the figure is
 * steady on a busy machine): the Express middleware and the Hono middleware, each against a
 * middleware that only runs the route inside a context (`runWithContext(anonymousContext(), next)`),
 * the floor for any middleware that keeps the contract. Each call gets a fresh Node
 * `IncomingMessage` with the same headers a client sends (for Hono: a fresh Web `Request`, through
 * `app.fetch`), built the same way on both sides.
 *
 * Run: npx tsx bench/middleware.ts   (about 10 s). Target: agentAuth within 3 µs of the floor.
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { Hono, type MiddlewareHandler } from 'hono';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { agentAuth as expressAgentAuth } from '../src/adapters/express.js';
import { agentAuth as honoAgentAuth } from '../src/adapters/hono.js';
import { anonymousContext, currentContext, runWithContext } from '../src/context.js';
import { createVerifier } from '../src/inbound/verifier.js';
import { median, record } from './report.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 200);
const AUDIENCE = 'https://api.bench.local';
const ISSUER = 'https://idp.bench.local/';

const { publicKey, privateKey } = await generateKeyPair('RS256');
const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'RS256', use: 'sig' };
const token = await new SignJWT({ scope: 'bench:read', email: 'alice@example.com' })
  .setProtectedHeader({ alg: 'RS256', kid: 'bench-1', typ: 'at+jwt' })
  .setIssuer(ISSUER)
  .setAudience(AUDIENCE)
  .setSubject('alice')
  .setIssuedAt()
  .setExpirationTime('2h')
  .sign(privateKey);
const verifier = createVerifier({
  providers: [{ issuer: ISSUER, jwksUri: `${ISSUER}jwks`, audiences: [AUDIENCE] }],
  fetch: async () => new Response(JSON.stringify({ keys: [jwk] }), { headers: { 'content-type': 'application/json' } }),
});

// What autocannon sends, plus a bearer.
const RAW = ['host', '127.0.0.1:3000', 'user-agent', 'bench/1', 'accept', '*/*', 'connection', 'keep-alive', 'authorization', `Bearer ${token}`];
const socket = new Socket();
function nodeRequest(): IncomingMessage {
  const message = new IncomingMessage(socket);
  message.method = 'GET';
  message.url = '/';
  message.rawHeaders = RAW.slice();
  (message as unknown as { _addHeaderLines(h: string[], n: number): void })._addHeaderLines(message.rawHeaders, message.rawHeaders.length);
  return message;
}
const res = new ServerResponse(nodeRequest());

type Mw = (req: IncomingMessage, res: ServerResponse, next: () => void) => void;
const agent = expressAgentAuth(verifier) as unknown as Mw;
const floor: Mw = (_req, _res, next) => runWithContext(anonymousContext(), next);

let seen = 0;
const next = () => {
  if (currentContext() !== undefined) seen++;
};
/** One synchronous call of an Express middleware on a fresh request. */
const express = (mw: Mw) => () => {
  mw(nodeRequest(), res, next);
};
/** A request built but no middleware: what building the request costs, for reference. */
const buildOnly = () => {
  next.call(nodeRequest());
};

const honoApp = (mw: MiddlewareHandler | undefined) => {
  const app = new Hono();
  if (mw !== undefined) app.use(mw);
  app.get('/', (c) => c.text('ok'));
  return app;
};
const honoHeaders = { authorization: `Bearer ${token}`, 'user-agent': 'bench/1', accept: '*/*' };
const honoCall = (app: Hono) => async () => {
  const r = await app.fetch(new Request('http://127.0.0.1:3000/', { headers: honoHeaders }));
  if (r.status !== 200) throw new Error(`hono: ${r.status}`);
};
const honoAgent = honoApp(honoAgentAuth(verifier));
const honoFloor = honoApp((_c, n) => runWithContext(anonymousContext(), n));

// Load the key set once; the token is then a seen one.
await verifier.verify({ headers: { authorization: `Bearer ${token}` } });

/** ns per call over one window. */
async function time(fn: () => unknown, batch: number): Promise<number> {
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < WINDOW_MS) {
    for (let i = 0; i < batch; i++) await fn();
    n += batch;
    now = performance.now();
  }
  return ((now - start) * 1e6) / n;
}

const cases: Array<[string, () => unknown, number]> = [
  ['build request only', buildOnly, 500],
  ['express: context only', express(floor), 500],
  ['express: agentAuth', express(agent), 500],
  ['hono: context only', honoCall(honoFloor), 200],
  ['hono: agentAuth', honoCall(honoAgent), 200],
];
for (const [, fn, batch] of cases) for (let i = 0; i < 20 * batch; i++) await fn(); // warm-up
const samples = new Map<string, number[]>(cases.map(([n]) => [n, []]));
const diffs = { express: [] as number[], hono: [] as number[] };
for (let r = 0; r < ROUNDS; r++) {
  const t = new Map<string, number>();
  for (const [name, fn, batch] of r % 2 === 0 ? cases : [...cases].reverse()) {
    const ns = await time(fn, batch);
    t.set(name, ns);
    samples.get(name)?.push(ns);
  }
  diffs.express.push(((t.get('express: agentAuth') as number) - (t.get('express: context only') as number)) / 1000);
  diffs.hono.push(((t.get('hono: agentAuth') as number) - (t.get('hono: context only') as number)) / 1000);
}
if (seen === 0) throw new Error('no route ran inside a context');
console.log(`middleware, in process (median of ${ROUNDS} interleaved windows of ${WINDOW_MS} ms), Node ${process.version}`);
for (const [name, xs] of samples) console.log(`  ${name.padEnd(24)} ${(median(xs) / 1000).toFixed(2).padStart(7)} µs/call`);
const e = median(diffs.express);
const h = median(diffs.hono);
console.log(`  agentAuth over the context-only floor: Express ${e.toFixed(2)} µs, Hono ${h.toFixed(2)} µs (target ≤ 3 µs)`);
record({ id: 'express/over-floor', label: 'Express `agentAuth` on a seen token, in process: µs over the context-only middleware', unit: 'µs', value: e, target: { op: '<=', value: 3 } });
record({ id: 'hono/over-floor', label: 'Hono `agentAuth` on a seen token, in process: µs over the context-only middleware', unit: 'µs', value: h, target: { op: '<=', value: 3 } });
