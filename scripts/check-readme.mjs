#!/usr/bin/env node
/**
 * Type-checks every ```ts block of README.md as written, under the project's strict settings, with
 * `agent-iam` and its subpaths resolved to this repository's sources. A block whose info string is
 * `ts fragment` is a deliberate excerpt and is skipped. Each block is its own module.
 *
 * Usage: node scripts/check-readme.mjs   (exit 1 and the compiler's messages when a block fails)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const out = join(root, '.readme-check');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const blocks = [];
const lines = readme.split('\n');
for (let i = 0; i < lines.length; i++) {
  const m = /^```(\S+)(.*)$/.exec(lines[i]);
  if (!m) continue;
  const start = i + 1;
  let end = start;
  while (end < lines.length && !lines[end].startsWith('```')) end++;
  if (m[1] === 'ts' && !/\bfragment\b/.test(m[2])) blocks.push({ line: start, code: lines.slice(start, end).join('\n') });
  i = end;
}
const files = [join(root, 'src', 'testing', 'oidc-provider.d.ts')];
blocks.forEach((b, n) => {
  const file = join(out, `block-${String(n + 1).padStart(2, '0')}-line-${b.line}.ts`);
  writeFileSync(file, `${b.code}\nexport {};\n`);
  files.push(file);
});
const base = JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8'));
const paths = Object.fromEntries(Object.entries(base.compilerOptions.paths ?? {}).map(([k, v]) => [k, v.map((p) => join(root, p))]));
writeFileSync(
  join(out, 'tsconfig.json'),
  JSON.stringify({ compilerOptions: { ...base.compilerOptions, paths, noUnusedLocals: false, baseUrl: root }, files }, null, 2),
);
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const r = spawnSync(process.execPath, [tsc, '--noEmit', '-p', join(out, 'tsconfig.json')], { cwd: root, encoding: 'utf8' });
const text = (r.stdout + r.stderr).replaceAll(out + '/', 'README ').trim();
if (r.status !== 0) {
  console.error(text);
  console.error(`README code blocks: ${blocks.length} checked, type errors above (block-NN-line-L: README line L).`);
  process.exit(1);
}
rmSync(out, { recursive: true, force: true });
console.log(`README code blocks: ${blocks.length} type-check as written.`);
