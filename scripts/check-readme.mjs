#!/usr/bin/env node
/**
 * Type-checks every ```ts block of README.md as written, under the project's strict settings, against
 * the built package: `agent-iam` and its subpaths resolve through package.json `exports` to dist/
 * (run `npm run build` first), exactly as a user's project sees them. A block whose info string is
 * `ts fragment` is a deliberate excerpt and is skipped. Each block is its own module.
 *
 * Usage: node scripts/check-readme.mjs   (exit 1 and the compiler's messages when a block fails)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const out = join(root, '.readme-check');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
if (!existsSync(join(root, 'dist', 'index.d.ts'))) {
  console.error('check-readme: dist/ is missing; run `npm run build` first (the README is checked against the built package).');
  process.exit(1);
}
// The package as a dependency of the checked files: resolved by name through its `exports`.
mkdirSync(join(out, 'node_modules'), { recursive: true });
symlinkSync(root, join(out, 'node_modules', 'agent-iam'), 'dir');

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
const { paths: _sources, ...compilerOptions } = base.compilerOptions;
writeFileSync(
  join(out, 'tsconfig.json'),
  JSON.stringify({ compilerOptions: { ...compilerOptions, noUnusedLocals: false, preserveSymlinks: true, typeRoots: [join(root, 'node_modules', '@types')] }, files }, null, 2),
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
