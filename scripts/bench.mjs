// `npm run bench [name ...]`: runs the benchmarks under bench/ one after another, each in its own
// process (so one's heap and JIT state never skew another's). Each prints ratios against a baseline
// measured in the same run. Exits non-zero if any benchmark fails.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const all = readdirSync(new URL('../bench/', import.meta.url))
  .filter((f) => f.endsWith('.ts') && f !== 'timing.ts') // timing.ts holds shared helpers
  .map((f) => f.slice(0, -3))
  .sort();
// `npm run bench -- verify http -- --seconds 10`: names first, then options after a second `--`.
const args = process.argv.slice(2);
const split = args.indexOf('--');
const wanted = split === -1 ? args : args.slice(0, split);
const passThrough = split === -1 ? [] : args.slice(split + 1);
const names = wanted.length > 0 ? wanted : all;
let failed = 0;
for (const name of names) {
  if (!all.includes(name)) {
    console.error(`unknown benchmark ${name}; have: ${all.join(', ')}`);
    failed++;
    continue;
  }
  console.log(`\n=== bench/${name}.ts ===`);
  // --expose-gc lets the memory benchmark measure the heap after a full collection.
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', `bench/${name}.ts`, ...passThrough], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
