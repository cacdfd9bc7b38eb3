/**
 * Load: 10,000 toolFetch calls, 200 in flight, across 1,000 users of a per-user oauth2 tool whose
 * access tokens expire during the run (real test IdP, real token manager, loopback upstream that
 * verifies each bearer's user against X-End-User-ID). Everything runs on 127.0.0.1 and stops by itself.
 *
 *   npx tsx bench/load-toolfetch.ts [--users N] [--calls N] [--concurrency N]
 *
 * Prints the measured figures, and exits 1 when a guarantee is broken: a wrong-user token, a failed
 * call, a token sent after its exp, or a refresh that served no traffic (a duplicate refresh).
 */
import { runToolFetchLoad } from '../test/reliability/load-harness.js';
import { record } from './report.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

const users = arg('users', 1000);
const calls = arg('calls', 10_000);
const concurrency = arg('concurrency', 200);
const accessTokenTtl = 6;
const refreshSkewSeconds = 2;
console.log(`load-toolfetch: ${calls} calls, ${concurrency} in flight, ${users} users, token lifetime ${accessTokenTtl} s (refreshed ${accessTokenTtl - refreshSkewSeconds} s after issue)`);

const r = await runToolFetchLoad({
  users,
  calls,
  concurrency,
  accessTokenTtl,
  refreshSkewSeconds,
  minDurationMs: 2 * (accessTokenTtl - refreshSkewSeconds) * 1000,
  connectConcurrency: 16,
  log: (line) => console.log(`  ${line}`),
});

const failed = Object.values(r.errors).reduce((a, b) => a + b, 0) + Object.values(r.upstreamRefused).reduce((a, b) => a + b, 0);
console.log(`  run: ${r.calls} calls in ${(r.durationMs / 1000).toFixed(1)} s = ${r.callsPerSecond} calls/s; latency p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, max ${r.latencyMs.max} ms`);
console.log(`  ok ${r.ok}, failed ${failed} ${JSON.stringify({ ...r.errors, ...r.upstreamRefused })}`);
console.log(`  wrong-user tokens: ${r.wrongUser}; refused by the upstream: ${r.invalidToken} ${JSON.stringify(r.invalidCodes)}`);
console.log(`  sent after exp: ${r.sentExpired}; least time left at send: ${r.minRemainingMs} ms`);
console.log(`  IdP refreshes: ${r.refreshes} (refreshes that served traffic: ${r.usedRefreshes}; users refreshed ≥ 2 times during the run: ${r.usersRefreshedTwice}/${r.users}; ceiling at one refresh per account per expiry: ${r.maxExpectedRefreshes})`);
const broken = r.wrongUser > 0 || failed > 0 || r.sentExpired > 0 || r.refreshes !== r.usedRefreshes || r.refreshes > r.maxExpectedRefreshes;
console.log(broken ? 'FAIL: a guarantee was broken' : 'PASS: zero wrong-user tokens, no failure, one refresh per account per expiry');
record({ id: 'calls-per-second', label: `load: ${calls} \`toolFetch\` calls, ${concurrency} in flight, ${users} users, expiring tokens`, unit: 'calls/s', value: r.callsPerSecond });
record({ id: 'wrong-user', label: 'load: wrong-user tokens sent', unit: 'count', value: r.wrongUser, target: { op: '<=', value: 0 } });
process.exitCode = broken ? 1 : 0;
