/**
 * Cost growth (issue 13): 10, 100 and 1,000 concurrent `toolFetch` calls against a real HTTP server on
 * 127.0.0.1 (in a child process, so that its work and its heap are not this process's).
 *
 * Costs, each against 10 concurrent calls in the same run:
 *   - wall time per call: batches of N calls started together and awaited, repeated; the same for
 *     plain `fetch` (same server, same headers, same global keep-alive pool) as a reference;
 *   - heap per call in flight: the server holds N requests until all have arrived; the heap (after a
 *     full GC) while they are held, minus the heap before they started, divided by N.
 * Target: no worse than linear: the wall time of N concurrent calls, and the heap they hold in
 * flight, at most N / 10 times that of 10 (equivalently: per call, no more than at 10 in flight).
 *
 *   node --expose-gc --import tsx bench/growth-concurrency.ts   (about 20 s)
 */
import { spawn } from 'node:child_process';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createToolFetch } from '../src/outbound/index.js';
import { median, record } from './report.js';

const SIZES = [10, 100, 1000] as const;
const ROUNDS = 9;
const CALLS_PER_ROUND = 2000;
const HEAP_REPS = 3;

let gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  setFlagsFromString('--expose_gc');
  gc = runInNewContext('gc') as () => void;
}
async function heapAfterGc(): Promise<number> {
  // timers between the collections: finalization callbacks (undici registers response bodies)
  // run, and what they held goes in the next collection
  for (let i = 0; i < 4; i++) {
    gc!();
    await new Promise((r) => setTimeout(r, 10));
  }
  return process.memoryUsage().heapUsed;
}

// ---- the upstream: answers at once, except under /v1/hold/ where it holds requests until told ----
const SERVER = `
const { createServer } = require('node:http');
let held = [];
let want = Infinity;
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    if (req.url.startsWith('/v1/hold/')) {
      held.push(res);
      if (held.length === want) process.send({ held: held.length });
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '11' }).end('{"ok":true}');
  });
});
server.keepAliveTimeout = 120000;
server.maxConnections = 5000;
process.on('message', (m) => {
  if (m.hold !== undefined) { want = m.hold; process.send({ ready: true }); }
  if (m.release) {
    const list = held; held = []; want = Infinity;
    for (const res of list) res.writeHead(200, { 'content-type': 'application/json', 'content-length': '11' }).end('{"ok":true}');
  }
});
process.on('disconnect', () => process.exit(0));
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
`;
const child = spawn(process.execPath, ['-e', SERVER], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const nextMessage = (key: string): Promise<Record<string, unknown>> =>
  new Promise((resolve) => {
    const on = (m: Record<string, unknown>) => {
      if (key in m) {
        child.off('message', on);
        resolve(m);
      }
    };
    child.on('message', on);
  });
const { port } = (await nextMessage('port')) as { port: number };
const origin = `http://127.0.0.1:${port}`;

const toolFetch = createToolFetch({
  agent: { id: 'bench-agent' },
  tools: [
    {
      name: 'api',
      baseUrl: origin,
      auth: { type: 'apiKey', key: 'sk_bench_123' },
      capabilities: [
        { method: 'GET', path: '/v1/items/:id' },
        { method: 'GET', path: '/v1/hold/:id' },
      ],
    },
  ],
  policies: [{ agent: 'bench-agent', tool: 'api' }],
  audit: () => {},
});
const headers = { authorization: 'Bearer sk_bench_123' };
type Call = (path: string) => Promise<void>;
const gated: Call = async (path) => {
  const res = await toolFetch(`${origin}${path}`);
  await res.arrayBuffer();
};
const plain: Call = async (path) => {
  const res = await fetch(`${origin}${path}`, { headers });
  await res.arrayBuffer();
};

/** Wall ns per call: batches of n calls started together, until about CALLS_PER_ROUND calls. */
async function perCall(call: Call, n: number): Promise<number> {
  const batches = Math.max(1, Math.round(CALLS_PER_ROUND / n));
  const start = performance.now();
  for (let b = 0; b < batches; b++) await Promise.all(Array.from({ length: n }, (_, i) => call(`/v1/items/it_${i}`)));
  return ((performance.now() - start) * 1e6) / (batches * n);
}

/** Heap bytes per call while n calls are held in flight by the server. */
async function inFlight(call: Call, n: number): Promise<number> {
  child.send({ hold: n });
  await nextMessage('ready');
  const idle = await heapAfterGc();
  const held = nextMessage('held');
  const calls = Array.from({ length: n }, (_, i) => call(`/v1/hold/h_${i}`));
  await held;
  const busy = await heapAfterGc();
  child.send({ release: true });
  await Promise.all(calls);
  return (busy - idle) / n;
}

const callers: Array<[string, Call]> = [
  ['toolFetch', gated],
  ['fetch', plain],
];
// warm-up: opens the keep-alive pool up to 1,000 sockets for both
for (const [, call] of callers) for (const n of SIZES) await perCall(call, n);

const time = new Map<string, number[]>();
const heap = new Map<string, number[]>();
const key = (name: string, n: number): string => `${name}/${n}`;
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? SIZES : [...SIZES].reverse();
  for (const n of order) {
    for (const [name, call] of r % 2 === 0 ? callers : [...callers].reverse()) {
      const k = key(name, n);
      time.set(k, [...(time.get(k) ?? []), await perCall(call, n)]);
    }
  }
}
for (let r = 0; r < HEAP_REPS; r++) {
  for (const n of SIZES) {
    for (const [name, call] of callers) {
      const k = key(name, n);
      await inFlight(call, n); // discarded: the same state before every measured one
      heap.set(k, [...(heap.get(k) ?? []), await inFlight(call, n)]);
    }
  }
}
child.disconnect();

const t = (name: string, n: number): number => median(time.get(key(name, n)) as number[]);
const h = (name: string, n: number): number => median(heap.get(key(name, n)) as number[]);
const n0 = SIZES[0];
console.log(`concurrent calls against a loopback server in a child process (median of ${ROUNDS} rounds of ~${CALLS_PER_ROUND} calls; heap: median of ${HEAP_REPS})`);
console.log('| in flight | toolFetch per call | ratio | fetch per call | toolFetch / fetch | toolFetch heap per call | ratio | fetch heap per call |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const n of SIZES) {
  console.log(
    `| ${n} | ${(t('toolFetch', n) / 1000).toFixed(1)} µs | ${(t('toolFetch', n) / t('toolFetch', n0)).toFixed(2)}x | ${(t('fetch', n) / 1000).toFixed(1)} µs | ${(t('toolFetch', n) / t('fetch', n)).toFixed(2)}x | ` +
      `${(h('toolFetch', n) / 1024).toFixed(1)} KB | ${(h('toolFetch', n) / h('toolFetch', n0)).toFixed(2)}x | ${(h('fetch', n) / 1024).toFixed(1)} KB |`,
  );
  record({ id: `time-us/${n}`, label: `\`toolFetch\`, ${n.toLocaleString('en-US')} calls in flight: wall time per call`, unit: 'µs', value: t('toolFetch', n) / 1000 });
  record({ id: `heap-per-call/${n}`, label: `\`toolFetch\`, ${n.toLocaleString('en-US')} calls in flight: heap per call in flight`, unit: 'B', value: h('toolFetch', n) });
  record({ id: `vs-fetch/${n}`, label: `\`toolFetch\` / plain \`fetch\` wall time per call, ${n.toLocaleString('en-US')} in flight`, value: t('toolFetch', n) / t('fetch', n) });
  if (n === n0) continue;
  const work = n / n0;
  // total = per call × n: "no worse than linear" is a total ratio ≤ the work ratio
  record({ id: `time-${n}/${n0}`, label: `\`toolFetch\` wall time of ${n.toLocaleString('en-US')} / ${n0} concurrent calls`, value: (t('toolFetch', n) * n) / (t('toolFetch', n0) * n0), target: { op: '<=', value: work } });
  record({ id: `heap-${n}/${n0}`, label: `heap held by ${n.toLocaleString('en-US')} / ${n0} \`toolFetch\` calls in flight`, value: (h('toolFetch', n) * n) / (h('toolFetch', n0) * n0), target: { op: '<=', value: work } });
}
