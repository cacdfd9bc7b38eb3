/**
 * Packaging: the built package (dist/) loads through its own `exports` map, in ESM and CJS, for every
 * subpath, and the root entry stays runtime-neutral (no express, no hono, of Node's modules only
 * node:async_hooks).
 *
 * The imports run in a child `node` process so that Node's own resolver (package self-reference by
 * name) is exercised, not vitest's.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  exports: Record<string, string | { import: { types: string; default: string }; require: { types: string; default: string } }>;
};
const subpaths = ['.', './express', './hono', './mcp', './testing', './redis', './postgres', './ai-sdk', './openai-agents', './langgraph', './mastra', './undici'] as const;
const specifier = (subpath: string): string => (subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`);

/** Exports each entry must offer (a floor, not the whole list: other areas add more). */
const expected: Record<string, string[]> = {
  '.': ['AgentIamError', 'isAgentIamError', 'renderError', 'currentContext', 'runWithContext', 'createVerifier'],
  './express': ['agentAuth', 'requireScopes'],
  './hono': ['agentAuth', 'requireScopes'],
  './mcp': [],
  './testing': [],
  './redis': ['redisStore'],
  './postgres': ['postgresStore'],
  './ai-sdk': ['createAiSdkTools'],
  './openai-agents': ['createOpenAIAgentsTools'],
  './langgraph': ['createLangGraphTools', 'AGENT_IAM_SESSION'],
  './mastra': ['createMastraTools', 'AGENT_IAM_SESSION'],
  './undici': ['createUndiciFetch'],
};

/** The agent frameworks' packages, by adapter entry. */
const frameworks: Record<string, RegExp> = {
  'ai-sdk': /^ai(\/|$)/,
  'openai-agents': /^@openai\//,
  langgraph: /^@langchain\//,
  mastra: /^@mastra\//,
  undici: /^undici(\/|$)/,
};
const isFramework = (spec: string): boolean => Object.values(frameworks).some((re) => re.test(spec));

beforeAll(async () => {
  if (!existsSync(join(root, 'dist', 'index.js'))) {
    await run('npx', ['tsup', '--silent'], { cwd: root, timeout: 120_000 });
  }
}, 150_000);

/** Load every subpath in a fresh Node process and return the export names per subpath. */
async function loadAll(kind: 'esm' | 'cjs'): Promise<Record<string, string[] | { error: string }>> {
  const script =
    kind === 'esm'
      ? `const out = {};
         for (const [sub, spec] of ${JSON.stringify(subpaths.map((s) => [s, specifier(s)]))}) {
           try { out[sub] = Object.keys(await import(spec)).sort(); } catch (e) { out[sub] = { error: String(e && e.message || e) }; }
         }
         process.stdout.write(JSON.stringify(out));`
      : `const out = {};
         for (const [sub, spec] of ${JSON.stringify(subpaths.map((s) => [s, specifier(s)]))}) {
           try { out[sub] = Object.keys(require(spec)).sort(); } catch (e) { out[sub] = { error: String(e && e.message || e) }; }
         }
         process.stdout.write(JSON.stringify(out));`;
  const args = kind === 'esm' ? ['--input-type=module', '-e', script] : ['--input-type=commonjs', '-e', script];
  const { stdout } = await run(process.execPath, args, { cwd: root, timeout: 60_000 });
  return JSON.parse(stdout) as Record<string, string[] | { error: string }>;
}

/** `dist/...` for our own files, `<package>/<path>` for dependencies. */
function shortName(url: string): string {
  const ownDist = `file://${join(root, 'dist')}/`;
  if (url.startsWith(ownDist)) return `dist/${url.slice(ownDist.length)}`;
  return url.replace(/^.*\/node_modules\//, '');
}

/** Every file reachable from `entry` through relative imports/requires, with the bare specifiers they use. */
function importGraph(entry: string): { files: string[]; bare: Set<string> } {
  const seen = new Set<string>();
  const bare = new Set<string>();
  const queue = [entry];
  // static imports/exports, dynamic import(), require()
  const patterns = [/\b(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']/g, /\bimport\s*["']([^"']+)["']/g, /\bimport\(\s*["']([^"']+)["']\s*\)/g, /\brequire\(\s*["']([^"']+)["']\s*\)/g];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const re of patterns) {
      for (const m of text.matchAll(re)) {
        const spec = m[1] as string;
        if (spec.startsWith('.')) queue.push(resolve(dirname(file), spec));
        else bare.add(spec);
      }
    }
  }
  return { files: [...seen], bare };
}

describe('packaging (built dist/ through the exports map)', () => {
  it('declares every subpath with types, import and require targets that exist', () => {
    for (const sub of subpaths) {
      const entry = pkg.exports[sub];
      expect(entry, sub).toBeTypeOf('object');
      if (typeof entry !== 'object') continue;
      for (const cond of [entry.import, entry.require]) {
        expect(existsSync(join(root, cond.types)), `${sub} ${cond.types}`).toBe(true);
        expect(existsSync(join(root, cond.default)), `${sub} ${cond.default}`).toBe(true);
      }
    }
  });

  it.each(['esm', 'cjs'] as const)('loads every subpath by package name (%s)', async (kind) => {
    const loaded = await loadAll(kind);
    for (const sub of subpaths) {
      const names = loaded[sub];
      expect(names, `${kind} ${sub}`).toBeInstanceOf(Array);
      for (const name of expected[sub] ?? []) expect(names, `${kind} ${sub} exports ${name}`).toContain(name);
    }
  });

  it('ESM and CJS builds expose the same names', async () => {
    const [esm, cjs] = await Promise.all([loadAll('esm'), loadAll('cjs')]);
    for (const sub of subpaths) expect(cjs[sub], sub).toEqual(esm[sub]);
  });

  it.each(['index.js', 'index.cjs'])('root entry %s imports no express, hono or Node built-in but node:async_hooks', (file) => {
    const { files, bare } = importGraph(join(root, 'dist', file));
    expect(files.length).toBeGreaterThan(0);
    const builtins = new Set(builtinModules);
    const offending = [...bare].filter((spec) => {
      if (spec === 'node:async_hooks') return false;
      if (spec.startsWith('node:')) return true;
      const name = spec.split('/')[0] as string;
      return name === 'express' || name === 'hono' || name.startsWith('@hono') || builtins.has(name) || builtins.has(spec);
    });
    // A bare 'async_hooks' here means tsup stripped the prefix: set `removeNodeProtocol: false` in tsup.config.ts
    // (Deno and Workers resolve Node built-ins by their `node:` names).
    expect(offending, 'Node built-ins other than node:async_hooks (a bare "async_hooks": set removeNodeProtocol: false in tsup.config.ts)').toEqual([]);
    // no Buffer either: the core runs on Web APIs only
    for (const f of files) expect(readFileSync(f, 'utf8'), f).not.toMatch(/\bBuffer\.(?:from|alloc|concat|isBuffer)\b/);
  });

  it('loading the root entry (dependencies included) resolves no express, hono, and only known Node built-ins', async () => {
    // A resolve hook records every module Node resolves while `import('agent-iam')` runs.
    const dir = mkdtempSync(join(tmpdir(), 'agent-iam-packaging-'));
    try {
      writeFileSync(
        join(dir, 'hooks.mjs'),
        `export async function resolve(specifier, context, next) {
           const result = await next(specifier, context);
           process.stderr.write('RESOLVED ' + result.url + ' FROM ' + (context.parentURL ?? '') + '\\n');
           return result;
         }`,
      );
      writeFileSync(join(dir, 'register.mjs'), `import { register } from 'node:module'; register(${JSON.stringify(`file://${join(dir, 'hooks.mjs')}`)});`);
      const { stderr } = await run(process.execPath, ['--import', join(dir, 'register.mjs'), '--input-type=module', '-e', `await import(${JSON.stringify(pkg.name)})`], { cwd: root, timeout: 60_000 });
      const resolved = stderr.split('\n').filter((l) => l.startsWith('RESOLVED ')).map((l) => l.slice('RESOLVED '.length).split(' FROM '));
      expect(resolved.length).toBeGreaterThan(0);
      expect(resolved.filter(([url]) => /\/node_modules\/(express|hono|@hono)\//.test(url ?? '')).map(([url]) => url)).toEqual([]);
      const builtins = [...new Set(resolved.filter(([url]) => url?.startsWith('node:')).map(([url, from]) => `${url} <- ${shortName(from ?? '')}`))];
      // Ours: node:async_hooks only. Known from dependencies: keyv's serializer imports node:buffer
      // (so Workers need nodejs_compat for the default store); anything new here should be looked at.
      const ours = builtins.filter((b) => b.includes('<- dist/') && !b.startsWith('node:async_hooks '));
      const theirs = builtins.filter((b) => !b.includes('<- dist/'));
      expect(ours).toEqual([]);
      expect(theirs.filter((b) => b !== 'node:buffer <- @keyv/serialize/dist/index.js')).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the express and hono entries do not pull in each other', () => {
    const expressGraph = importGraph(join(root, 'dist', 'express.js'));
    const honoGraph = importGraph(join(root, 'dist', 'hono.js'));
    expect([...expressGraph.bare].filter((s) => s === 'hono' || s.startsWith('hono/'))).toEqual([]);
    expect([...honoGraph.bare].filter((s) => s === 'express' || s.startsWith('express/'))).toEqual([]);
  });
  it('no published declaration file carries an @internal symbol, and the root exports no internal helper', async () => {
    const { readdirSync } = await import('node:fs');
    const dts = readdirSync(join(root, 'dist')).filter((f) => /\.d\.c?ts$/.test(f));
    expect(dts.length).toBeGreaterThan(0);
    expect(dts.filter((f) => readFileSync(join(root, 'dist', f), 'utf8').includes('@internal'))).toEqual([]);
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', `import * as m from '${pkg.name}'; console.log(JSON.stringify(Object.keys(m)))`], { cwd: root });
    const names = JSON.parse(stdout) as string[];
    for (const internal of ['configError', 'isInboundCode', 'bearerErrorFor', 'isVerifier', 'DROP_REJECTED_TOKEN', 'RESOURCE_CHALLENGE']) expect(names).not.toContain(internal);
  });

  it.each(['index', 'express', 'hono', 'mcp', 'testing', 'redis', 'postgres'])('the %s entry (ESM and CJS) references no agent framework package', (entry) => {
    for (const ext of ['js', 'cjs']) {
      const { files, bare } = importGraph(join(root, 'dist', `${entry}.${ext}`));
      expect(files.length).toBeGreaterThan(0);
      expect([...bare].filter(isFramework), `${entry}.${ext}`).toEqual([]);
      for (const f of files) expect(readFileSync(f, 'utf8'), f).not.toMatch(/["'](?:ai|@openai\/agents|@langchain\/[a-z-]+|@mastra\/core|undici)(?:\/[a-z-]+)?["']/);
    }
  });

  it.each(Object.keys(frameworks))('the %s adapter imports only its own framework, and only lazily', (entry) => {
    for (const ext of ['js', 'cjs']) {
      const { bare } = importGraph(join(root, 'dist', `${entry}.${ext}`));
      const used = [...bare].filter(isFramework);
      expect(used.length, `${entry}.${ext}`).toBeGreaterThan(0);
      expect(used.filter((spec) => !(frameworks[entry] as RegExp).test(spec)), `${entry}.${ext}`).toEqual([]);
      // no static import: the entry loads without the framework, and a missing one is a typed error
      const text = readFileSync(join(root, 'dist', `${entry}.${ext}`), 'utf8');
      for (const spec of used) {
        expect(text, spec).not.toMatch(new RegExp(`(?:from\\s*|require\\(\\s*)["']${spec.replace(/[/.]/g, '\\$&')}["']`));
      }
    }
  });
});
