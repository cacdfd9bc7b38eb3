// Token manager: cost of a cached getAccessToken (memory store, with and without encryption)
// against a plain Map.get measured in the same run, the uncached (store read + decrypt) cost, and
// the wall time of 1000 concurrent callers on one expired account (exactly one refresh expected).
// Run: npx tsx bench/tokens.ts   (about 8 seconds; starts a local oidc-provider on 127.0.0.1)
import { createTestIdentityProvider } from '../src/testing/index.js';
import { createTokenManager, type TokenManager } from '../src/index.js';
import { generateEncryptionKey } from '../src/stores/encryption.js';
import { fmt, measure } from './timing.js';
import { record } from './report.js';

const REDIRECT = 'http://127.0.0.1:9/callback';


async function main(): Promise<void> {
  const idp = await createTestIdentityProvider({ accessTokenTtl: 3600 });
  try {
    const reg = await idp.registerClient({ redirect_uris: [REDIRECT] });
    const connection = { id: 'corp', issuer: idp.issuer, clientId: reg.client_id, clientSecret: reg.client_secret as string, redirectUri: REDIRECT, scopes: ['openid', 'read'] };
    const connect = async (tokens: TokenManager, userId: string): Promise<void> => {
      const { url } = await tokens.startAuthorization({ connection: 'corp', userId });
      await tokens.completeAuthorization(await idp.authorize(url, { userId }));
    };
    const key = generateEncryptionKey();
    const plain = createTokenManager({ connections: [connection] });
    const encrypted = createTokenManager({ connections: [connection], encryptionKey: key });
    const plainNoCache = createTokenManager({ connections: [connection], cacheSize: 0 });
    const encryptedNoCache = createTokenManager({ connections: [connection], encryptionKey: key, cacheSize: 0 });
    for (const t of [plain, encrypted, plainNoCache, encryptedNoCache]) await connect(t, 'alice');
    const ref = { connection: 'corp', userId: 'alice' };

    const map = new Map<string, { accessToken: string }>([['agent-iam:v1:account:corp:user:alice', { accessToken: 'x' }]]);
    // Interleaved rounds, median of each: the machine is shared, so one long run per case is noisy.
    const rounds: Record<'map' | 'plain' | 'enc', number[]> = { map: [], plain: [], enc: [] };
    for (let i = 0; i < 5; i++) {
      rounds.map.push(await measure(() => map.get('agent-iam:v1:account:corp:user:alice'), 250, 500));
      rounds.plain.push(await measure(() => plain.getAccessToken(ref), 250, 500));
      rounds.enc.push(await measure(() => encrypted.getAccessToken(ref), 250, 500));
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
    const mapGet = median(rounds.map);
    const cachedPlain = median(rounds.plain);
    const cachedEnc = median(rounds.enc);
    const storePlain = await measure(() => plainNoCache.getAccessToken(ref), 500, 500);
    const storeEnc = await measure(() => encryptedNoCache.getAccessToken(ref), 500, 500);
    console.log('getAccessToken, memory store (median of 5 interleaved rounds, mean per awaited call):');
    console.log(`  Map.get (baseline)                    ${fmt(mapGet)}`);
    console.log(`  cached, unencrypted                   ${fmt(cachedPlain)}  (${(cachedPlain / mapGet).toFixed(1)}x Map.get)`);
    console.log(`  cached, encrypted                     ${fmt(cachedEnc)}  (${(cachedEnc / mapGet).toFixed(1)}x Map.get, ${(cachedEnc / cachedPlain).toFixed(2)}x unencrypted; target <= 2x)`);
    console.log(`  no cache, unencrypted (store read)    ${fmt(storePlain)}  (${(storePlain / mapGet).toFixed(0)}x Map.get)`);
    record({ id: 'cached-encrypted/unencrypted', label: 'cached `getAccessToken`, encrypted / unencrypted store', value: cachedEnc / cachedPlain, target: { op: '<=', value: 2 } });
    record({ id: 'cached/map-get', label: 'cached `getAccessToken` (unencrypted) / `Map.get`', value: cachedPlain / mapGet });
    console.log(`  no cache, encrypted (read + decrypt)  ${fmt(storeEnc)}  (${(storeEnc / storePlain).toFixed(2)}x unencrypted)`);

    // 1000 concurrent callers on one expired account: a skew longer than the token lifetime makes
    // the stored token count as expired.
    const expiring = createTokenManager({ connections: [connection], encryptionKey: key, refreshSkewSeconds: 7200 });
    await connect(expiring, 'bob');
    const one = createTokenManager({ connections: [connection], encryptionKey: key, refreshSkewSeconds: 7200 });
    await connect(one, 'carol');
    idp.resetStats();
    let t0 = performance.now();
    await one.getAccessToken({ connection: 'corp', userId: 'carol' });
    const single = performance.now() - t0;
    idp.resetStats();
    t0 = performance.now();
    const results = await Promise.all(Array.from({ length: 1000 }, () => expiring.getAccessToken({ connection: 'corp', userId: 'bob' })));
    const wall = performance.now() - t0;
    const refreshes = idp.stats.token.refresh_token ?? 0;
    console.log('1000 concurrent getAccessToken on one expired account (encrypted memory store):');
    console.log(`  one caller (baseline)    ${single.toFixed(1)} ms`);
    console.log(`  1000 callers             ${wall.toFixed(1)} ms  (${(wall / single).toFixed(2)}x one caller)`);
    console.log(`  refreshes at the server  ${refreshes}  (expected 1); distinct tokens returned ${new Set(results.map((r) => r.accessToken)).size}`);
    record({ id: 'stampede-refreshes', label: '1,000 concurrent `getAccessToken` on one expired account: refreshes at the server', unit: 'count', value: refreshes, target: { op: '<=', value: 1 } });
    record({ id: 'stampede/one', label: '1,000 concurrent callers on one expired account / one caller (wall time)', value: wall / single });
    if (refreshes !== 1) process.exitCode = 1;
  } finally {
    await idp.close();
  }
}

await main();
