/**
 * The direction of imports inside `src/`: each folder is one layer and imports only layers below it
 * (CONTRIBUTING.md draws the diagram). Peers of one rank do not import each other. The framework-free
 * layers import no framework and, of Node's modules, only `node:async_hooks`.
 *
 * Imports are read with TypeScript's own pre-processor, so commented examples do not count and
 * dynamic `import()` does.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const src = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src');

/** Rank per layer: a file may import a layer of strictly lower rank, or its own folder. */
const RANK: Record<string, number> = {
  errors: 0,
  lib: 1,
  context: 2,
  audit: 3,
  stores: 4,
  inbound: 5,
  policy: 5.5,
  tokens: 5,
  redis: 5,
  postgres: 5,
  outbound: 6,
  mcp: 6,
  testing: 6,
  http: 7,
  pages: 7.5,
  app: 8,
  adapters: 9,
  index: 10,
};

/** Layers that must run on every Web-API runtime: no framework, no Node module but async_hooks. */
const NEUTRAL = ['errors', 'lib', 'context', 'audit', 'stores', 'inbound', 'policy', 'tokens', 'outbound', 'mcp', 'http', 'pages', 'app'];
const FRAMEWORKS = /^(express|hono|@hono\/|ai$|ai\/|@openai\/agents|@langchain\/|@mastra\/|undici|redis$|ioredis|pg$|oidc-provider)/;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return /\.(ts|mts)$/.test(name) && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** `src/tokens/flows.ts` -> `tokens`; `src/errors.ts` -> `errors`. */
function layerOf(path: string): string {
  const rel = relative(src, path).split('/');
  return rel.length === 1 ? (rel[0] as string).replace(/\.(js|ts)$/, '') : (rel[0] as string);
}

const edges = files(src).flatMap((file) => {
  const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return importedFiles.map((i) => ({ from: file, spec: i.fileName }));
});

describe('layers', () => {
  it('every folder of src has a rank', () => {
    expect([...new Set(files(src).map(layerOf))].filter((l) => !(l in RANK))).toEqual([]);
  });

  it('imports go only downward', () => {
    const upward: string[] = [];
    for (const { from, spec } of edges) {
      if (!spec.startsWith('.')) continue;
      const a = layerOf(from);
      const b = layerOf(resolve(dirname(from), spec));
      if (a === b) continue;
      if (!((RANK[b] ?? 99) < (RANK[a] ?? -1))) upward.push(`${relative(src, from)} -> ${spec} (${a} ${RANK[a]} -> ${b} ${RANK[b]})`);
    }
    expect(upward).toEqual([]);
  });

  it('the framework-free layers import no framework, store client or Node module but node:async_hooks', () => {
    const bad = edges
      .filter(({ from }) => NEUTRAL.includes(layerOf(from)))
      .filter(({ spec }) => (spec.startsWith('node:') && spec !== 'node:async_hooks') || FRAMEWORKS.test(spec) || builtinWithoutPrefix(spec))
      .map(({ from, spec }) => `${relative(src, from)} -> ${spec}`);
    expect(bad).toEqual([]);
  });

  it('the check sees a violation (a synthetic upward edge is reported)', () => {
    const a = layerOf(join(src, 'tokens', 'x.ts'));
    const b = layerOf(resolve(join(src, 'tokens'), '../http/route-core.js'));
    expect((RANK[b] as number) < (RANK[a] as number)).toBe(false);
  });
});

function builtinWithoutPrefix(spec: string): boolean {
  return ['fs', 'path', 'http', 'https', 'net', 'crypto', 'os', 'child_process', 'stream', 'buffer', 'util', 'url'].includes(spec);
}
