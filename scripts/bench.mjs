// `npm run bench [name ...] [--repeat N] [-- options]`: runs the benchmarks under bench/ one after
// another, each in its own process (so one's heap and JIT state never skew another's). Each prints
// its own lines and records its figures (bench/report.ts), every one a ratio against a baseline
// measured in the same run, or a quantity with its unit.
//
// At the end: one table of every recorded figure (the median over the --repeat runs, with the range),
// and bench/results.json updated: the figures are stored per Node major version (`node20`, `node24`),
// replacing only the benchmarks that ran, so runs on several Node binaries merge into one file:
//   node scripts/bench.mjs http                      # Node on PATH
//   /path/to/node24/bin/node scripts/bench.mjs http  # the same benchmark on Node 24, merged
// `node scripts/bench-table.mjs` then rewrites the README's performance table from that file.
// Options: --repeat N (default 1), --no-write (print only). Exits non-zero if any benchmark fails.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatTarget, formatValue, meets, median } from './bench-format.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const HELPERS = new Set(['timing.ts', 'report.ts']); // shared helpers, not benchmarks
const all = readdirSync(new URL('../bench/', import.meta.url))
  .filter((f) => f.endsWith('.ts') && !HELPERS.has(f))
  .map((f) => f.slice(0, -3))
  .sort();
// `npm run bench -- verify http -- --seconds 10`: names first, then options after a second `--`.
const args = process.argv.slice(2);
const split = args.indexOf('--');
const own = split === -1 ? args : args.slice(0, split);
const passThrough = split === -1 ? [] : args.slice(split + 1);
let repeat = 1;
let write = true;
const wanted = [];
for (let i = 0; i < own.length; i++) {
  if (own[i] === '--repeat') repeat = Math.max(1, Number(own[++i]) || 1);
  else if (own[i] === '--no-write') write = false;
  else wanted.push(own[i]);
}
const names = wanted.length > 0 ? wanted : all;
const scratch = mkdtempSync(join(tmpdir(), 'agent-iam-bench-'));
/** bench → id → { record, values[] } */
const collected = new Map();
const failedBenches = new Set();
let failed = 0;
for (const name of names) {
  if (!all.includes(name)) {
    console.error(`unknown benchmark ${name}; have: ${all.join(', ')}`);
    failed++;
    continue;
  }
  for (let run = 1; run <= repeat; run++) {
    console.log(`\n=== bench/${name}.ts${repeat > 1 ? ` (run ${run} of ${repeat})` : ''} on Node ${process.version} ===`);
    const out = join(scratch, `${name}-${run}.jsonl`);
    writeFileSync(out, '');
    // --expose-gc lets the memory benchmarks measure the heap after a full collection.
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', `bench/${name}.ts`, ...passThrough], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, BENCH_RESULTS: out },
    });
    if (r.status !== 0) {
      failed++;
      failedBenches.add(name);
    }
    for (const line of readFileSync(out, 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      const rec = JSON.parse(line);
      const perBench = collected.get(rec.bench) ?? new Map();
      collected.set(rec.bench, perBench);
      const slot = perBench.get(rec.id) ?? { record: rec, values: [] };
      slot.record = rec; // the latest label, target and note
      slot.values.push(rec.value);
      perBench.set(rec.id, slot);
    }
  }
}
rmSync(scratch, { recursive: true, force: true });

const rows = [];
const results = {};
for (const [bench, perBench] of collected) {
  results[bench] = {};
  for (const [id, { record, values }] of perBench) {
    const value = median(values);
    const entry = {
      label: record.label,
      value,
      unit: record.unit ?? 'x',
      runs: values,
      ...(record.target !== undefined ? { target: record.target, met: meets(value, record.target) } : {}),
      ...(record.note !== undefined ? { note: record.note } : {}),
    };
    results[bench][id] = entry;
    rows.push([
      bench,
      record.label,
      formatValue(value, entry.unit),
      values.length > 1 ? `${formatValue(Math.min(...values), entry.unit)} – ${formatValue(Math.max(...values), entry.unit)}` : '',
      record.target === undefined ? '' : formatTarget(record.target, entry.unit),
      entry.met === undefined ? '' : entry.met ? 'met' : 'NOT MET',
    ]);
  }
}

if (rows.length > 0) {
  const header = ['bench', 'figure (against its baseline in the same run)', `median`, repeat > 1 ? `range (${repeat} runs)` : '', 'target', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  console.log(`\n=== results, Node ${process.version} ===`);
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}

if (write && rows.length > 0) {
  const path = join(root, 'bench', 'results.json');
  const file = existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : { runtimes: {} };
  const key = `node${process.versions.node.split('.')[0]}`;
  const runtime = file.runtimes[key] ?? { benches: {} };
  const date = new Date().toISOString().slice(0, 10);
  const machine = `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'unknown CPU'}`;
  for (const [bench, figures] of Object.entries(results)) {
    runtime.benches[bench] = { node: process.version, date, machine, runs: repeat, ...(failedBenches.has(bench) ? { failed: true } : {}), figures };
  }
  file.runtimes[key] = runtime;
  // Stable order: runtimes by version, benches by name.
  const sorted = { runtimes: {} };
  for (const k of Object.keys(file.runtimes).sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)))) {
    const benches = {};
    for (const b of Object.keys(file.runtimes[k].benches).sort()) benches[b] = file.runtimes[k].benches[b];
    sorted.runtimes[k] = { benches };
  }
  writeFileSync(path, `${JSON.stringify(sorted, null, 2)}\n`);
  console.log(`\nbench/results.json: ${Object.keys(results).length} benchmark(s) written under ${key}; \`node scripts/bench-table.mjs\` updates the README`);
}
process.exit(failed === 0 ? 0 : 1);
