#!/usr/bin/env node
// Where a benchmark's time goes: the functions of a V8 CPU profile (`node --cpu-prof`) by self time
// and by inclusive time, as shares of all samples (idle and GC included, so that shares of two
// profiles of the same loop compare).
//
// Usage:
//   node --cpu-prof --cpu-prof-dir=prof --import tsx bench/toolfetch.ts   (bench/http.ts: its server
//        children inherit the flag and write their own profiles)
//   node scripts/cpu-profile-top.mjs prof/CPU.*.cpuprofile [--filter src/] [--top 25]
//
// A function is named `name file:line` (the file's last two path segments). Inclusive time counts
// a function once per sample even when it recurses. Under tsx the line is that of its transformed file.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const files = [];
let filter = '';
let top = 25;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--filter') filter = args[++i] ?? '';
  else if (args[i] === '--top') top = Number(args[++i]) || top;
  else files.push(args[i]);
}
if (files.length === 0) {
  console.error('usage: node scripts/cpu-profile-top.mjs <profile.cpuprofile>... [--filter text] [--top N]');
  process.exit(2);
}

for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`;
  // Time per sampled node: each sample lasts until the next one.
  const timeOf = new Map();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i + 1] ?? 0;
    timeOf.set(id, (timeOf.get(id) ?? 0) + dt);
    total += dt;
  });
  const self = new Map();
  const inclusive = new Map();
  for (const [id, t] of timeOf) {
    const key = label(byId.get(id));
    self.set(key, (self.get(key) ?? 0) + t);
    const seen = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const k = label(byId.get(at));
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + t);
    }
  }
  const print = (title, map) => {
    console.log(`  ${title}`);
    for (const [k, t] of [...map].filter(([k]) => k.includes(filter)).sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`  ${((100 * t) / total).toFixed(2).padStart(7)}%  ${k}`);
    }
  };
  console.log(`${file}: ${profile.samples.length} samples over ${(total / 1e6).toFixed(2)} s${filter ? `, functions matching "${filter}"` : ''}`);
  print('self time', self);
  print('inclusive time', inclusive);
}
