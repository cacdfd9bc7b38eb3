/**
 * Cost of one capability match with 10 vs 1000 declared capabilities (same requests), and, for
 * scale, a naive scan of one RegExp per capability. Also the cost of one policy decision with 10 vs
 * 1000 rules (rules are indexed by agent and tool, so only the applicable ones are looked at).
 *
 * Also (issue 13, cost growth): match and the whole toolFetch preflight with 10, 100 and 1,000
 * capabilities on the tool, each against 10 in the same run (target: no worse than linear).
 *
 * Run: npx tsx bench/capabilities.ts   (about 8 s)
 * Target (issue 4): matching with 1000 capabilities at most 2x the cost with 10.
 */
import { compileCapabilities, type Capability } from '../src/policy/capabilities.js';
import { createPolicyEngine, type PolicyInput, type PolicyRule } from '../src/policy/policies.js';
import { createToolFetch } from '../src/outbound/index.js';
import { preflightOf, type Preflight } from '../src/outbound/preflight.js';
import { median, record } from './report.js';

const METHODS = ['GET', 'POST', 'DELETE', 'PATCH'];

/** `n` capabilities shaped like a real API: collections, items, sub-resources, a few wildcards. */
function capabilities(n: number): Capability[] {
  const out: Capability[] = [];
  for (let i = 0; out.length < n; i++) {
    const r = `/v1/resource${i}`;
    const candidates: Capability[] = [
      { method: 'GET', path: r },
      { method: 'GET', path: `${r}/:id` },
      { method: METHODS[i % 4] as string, path: `${r}/:id/items/:item` },
      { method: i % 5 === 0 ? '*' : 'PUT', path: `${r}/:id/files/*` },
      { method: 'POST', path: `${r}/:id/actions/${i % 3 === 0 ? 'cancel' : 'refund'}` },
    ];
    for (const c of candidates) if (out.length < n) out.push(c);
  }
  return out;
}

/** The same 64 requests for both sets: hits on the first resources and misses. */
const requests: Array<[string, string]> = [];
for (let i = 0; i < 64; i++) {
  const r = i % 2;
  const kind = i % 8;
  const path =
    kind === 0 ? `/v1/resource${r}`
    : kind === 1 ? `/v1/resource${r}/obj_${i}`
    : kind === 2 ? `/v1/resource${r}/obj_${i}/items/it_${i}`
    : kind === 3 ? `/v1/resource${r}/obj_${i}/files/a/b/c.txt`
    : kind === 4 ? `/v1/resource${r}/obj_${i}/actions/cancel`
    : kind === 5 ? `/v1/unknown/obj_${i}`
    : kind === 6 ? `/v1/resource${r}/obj_${i}/nope`
    : `/v2/other/${i}/deep/path/here`;
  requests.push([kind === 4 ? 'post' : kind === 2 ? 'GET' : 'GET', path]);
}

/** The baseline that issue 4 rules out: one RegExp per capability, scanned per call. */
function naive(caps: Capability[]): (method: string, path: string) => Capability | undefined {
  const compiled = caps.map((c) => {
    const body = c.path
      .split('/')
      .map((s) => (s === '*' ? '.*' : s.startsWith(':') ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('/');
    return { cap: c, method: c.method.toUpperCase(), re: new RegExp(`^${body}$`) };
  });
  return (method, path) => {
    const m = method.toUpperCase();
    for (const c of compiled) if ((c.method === '*' || c.method === m) && c.re.test(path)) return c.cap;
    return undefined;
  };
}

const WINDOW_MS = 150;
const ROUNDS = 5;
let sink = 0;

function time(match: (method: string, path: string) => Capability | undefined): number {
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < WINDOW_MS) {
    for (let k = 0; k < 1000; k++) {
      const [method, path] = requests[(n + k) & 63] as [string, string];
      if (match(method, path) !== undefined) sink++;
    }
    n += 1000;
    now = performance.now();
  }
  return ((now - start) * 1e6) / n; // ns/op
}

const cases: Array<[string, (method: string, path: string) => Capability | undefined]> = [];
for (const n of [10, 100, 1000]) {
  const m = compileCapabilities(capabilities(n));
  cases.push([`compiled, ${n} capabilities`, (method, path) => m.match(method, path)]);
}
cases.push(['naive RegExp scan, 10', naive(capabilities(10))]);
cases.push(['naive RegExp scan, 1000', naive(capabilities(1000))]);

// sanity: both compiled sets agree on these requests (the extra 990 capabilities name other resources)
const [small, big] = [compileCapabilities(capabilities(10)), compileCapabilities(capabilities(1000))];
for (const [method, path] of requests) {
  if (small.match(method, path)?.path !== big.match(method, path)?.path) throw new Error(`sets disagree on ${method} ${path}`);
}

for (const [, fn] of cases) time(fn); // warm-up
const best = new Map<string, number>();
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, fn] of cases) best.set(name, Math.min(best.get(name) ?? Infinity, time(fn)));
}
console.log('capability matching (best of %d windows of %d ms)', ROUNDS, WINDOW_MS);
for (const [name, ns] of best) console.log(`  ${name.padEnd(30)} ${ns.toFixed(1).padStart(9)} ns/op`);
const ratio = (best.get('compiled, 1000 capabilities') as number) / (best.get('compiled, 10 capabilities') as number);
const naiveRatio = (best.get('naive RegExp scan, 1000') as number) / (best.get('naive RegExp scan, 10') as number);
console.log(`  ratio 1000/10 compiled: ${ratio.toFixed(2)}x (target ≤ 2x) ${ratio <= 2 ? 'OK' : 'MISSED'}`);
console.log(`  ratio 1000/10 naive:    ${naiveRatio.toFixed(2)}x`);
const ratio100 = (best.get('compiled, 100 capabilities') as number) / (best.get('compiled, 10 capabilities') as number);
console.log(`  ratio 100/10 compiled:  ${ratio100.toFixed(2)}x (target ≤ 2x)`);
record({ id: 'match-100/10', label: 'capability match, 100 / 10 declared capabilities', value: ratio100, target: { op: '<=', value: 2 } });
record({ id: 'match-1000/10', label: 'capability match, 1,000 / 10 declared capabilities', value: ratio, target: { op: '<=', value: 2 } });

// ---- policy evaluation ----
function rules(n: number): PolicyRule[] {
  const out: PolicyRule[] = [];
  for (let i = 0; out.length < n; i++) {
    out.push({ agent: `agent-${i % 20}`, tool: `tool-${i}`, groups: [`g${i % 7}`, 'staff'] });
    if (out.length < n) out.push({ agent: '*', tool: `tool-${i}`, effect: 'approval', capabilities: [{ method: 'POST', path: `/v1/t${i}/:id/refund` }] });
    // one deny rule per agent (20 agents), not one per tool
    if (out.length < n && i < 20) out.push({ agent: `agent-${i}`, tool: '*', groups: ['suspended'], effect: 'deny' });
  }
  return out;
}
const inputs: PolicyInput[] = Array.from({ length: 64 }, (_, i) => ({
  agentId: `agent-${i % 3}`,
  tool: `tool-${i % 3}`,
  userId: `u${i}`,
  groups: i % 5 === 0 ? ['staff', 'suspended'] : ['staff'],
  domain: 'example.com',
  actorChain: [],
  method: i % 4 === 0 ? 'POST' : 'GET',
  path: `/v1/t${i % 3}/obj_${i}/refund`,
}));
const engines = [10, 1000].map((n) => [n, createPolicyEngine(rules(n))] as const);
for (const [n, e] of engines) for (const i of inputs) if (e.evaluate(i).effect !== engines[0]![1].evaluate(i).effect) throw new Error(`engines disagree (${n})`);
function timeEval(e: ReturnType<typeof createPolicyEngine>): number {
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < WINDOW_MS) {
    for (let k = 0; k < 1000; k++) if (e.evaluate(inputs[(n + k) & 63] as PolicyInput).effect === 'allow') sink++;
    n += 1000;
    now = performance.now();
  }
  return ((now - start) * 1e6) / n;
}
for (const [, e] of engines) timeEval(e);
const evalBest = new Map<number, number>();
for (let r = 0; r < ROUNDS; r++) for (const [n, e] of engines) evalBest.set(n, Math.min(evalBest.get(n) ?? Infinity, timeEval(e)));
console.log('policy evaluation');
for (const [n, ns] of evalBest) console.log(`  ${`${n} rules`.padEnd(30)} ${ns.toFixed(1).padStart(9)} ns/op`);
console.log(`  ratio 1000/10 rules: ${((evalBest.get(1000) as number) / (evalBest.get(10) as number)).toFixed(2)}x`);
record({ id: 'policy-1000/10', label: 'policy decision, 1,000 / 10 rules', value: (evalBest.get(1000) as number) / (evalBest.get(10) as number), target: { op: '<=', value: 2 } });
if (sink < 0) console.log(sink);

// ---- the whole toolFetch preflight (issue 13: cost growth with capabilities per tool) ----
// URL safety, tool, headers, policy and the capability check of a real toolFetch, stopping before
// the credential (what the framework adapters ask before a tool runs): nothing is sent.
const preflightHits = requests.filter(([m, p]) => small.match(m, p) !== undefined);
const preflights = [10, 100, 1000].map((n) => {
  const tf = createToolFetch({
    agent: { id: 'bench-agent' },
    tools: [{ name: 'api', baseUrl: 'https://api.bench.example', auth: { type: 'apiKey', key: 'sk_bench' }, capabilities: capabilities(n) }],
    policies: [{ agent: 'bench-agent', tool: 'api' }],
  });
  return [n, preflightOf(tf) as Preflight] as const;
});
const preflightUrls = preflightHits.map(([m, p]) => [m.toUpperCase(), `https://api.bench.example${p}`] as const);
async function timePreflight(pf: Preflight): Promise<number> {
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < WINDOW_MS) {
    for (let k = 0; k < 200; k++) {
      const [method, url] = preflightUrls[(n + k) % preflightUrls.length] as readonly [string, string];
      if ((await pf(url, { method })).tool === 'api') sink++;
    }
    n += 200;
    now = performance.now();
  }
  return ((now - start) * 1e6) / n;
}
for (const [, pf] of preflights) await timePreflight(pf);
const preflightSamples = new Map<number, number[]>();
for (let r = 0; r < 7; r++) {
  for (const [n, pf] of r % 2 === 0 ? preflights : [...preflights].reverse()) preflightSamples.set(n, [...(preflightSamples.get(n) ?? []), await timePreflight(pf)]);
}
const pf10 = median(preflightSamples.get(10) as number[]);
console.log('toolFetch preflight (median of 7 interleaved windows)');
for (const [n] of preflights) {
  const ns = median(preflightSamples.get(n) as number[]);
  console.log(`  ${`${n} capabilities`.padEnd(30)} ${ns.toFixed(0).padStart(9)} ns/op   ${(ns / pf10).toFixed(2)}x (target ≤ ${n / 10}x)`);
  record({ id: `preflight-ns/${n}`, label: `\`toolFetch\` preflight (policy + capability, nothing sent), ${n.toLocaleString('en-US')} capabilities`, unit: 'ns', value: ns });
  if (n !== 10) record({ id: `preflight-${n}/10`, label: `\`toolFetch\` preflight, ${n.toLocaleString('en-US')} / 10 capabilities on the tool (per call)`, value: ns / pf10, target: { op: '<=', value: n / 10 } });
}
if (sink < 0) console.log(sink);
