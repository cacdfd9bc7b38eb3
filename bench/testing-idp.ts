/**
 * What the local test identity provider costs a test suite: start-up (incl. an RSA key), `tokenFor`
 * against a bare jose `SignJWT` with the same kind of key (baseline, same run), and one complete
 * headless authorization-code flow (authorize + code exchange).
 *
 * Run: npx tsx bench/testing-idp.ts   (about 5 s)
 */
import * as oauth from 'oauth4webapi';
import { SignJWT, generateKeyPair } from 'jose';
import { createTestIdentityProvider } from '../src/testing/index.js';
import { record } from './report.js';

const insecure = { [oauth.allowInsecureRequests]: true };

async function perOp(name: string, fn: () => Promise<unknown>, iterations: number): Promise<number> {
  for (let i = 0; i < Math.min(20, iterations); i++) await fn();
  const start = performance.now();
  for (let i = 0; i < iterations; i++) await fn();
  const ms = (performance.now() - start) / iterations;
  console.log(`${name.padEnd(40)} ${ms.toFixed(3)} ms/op`);
  return ms;
}

const t0 = performance.now();
const idp = await createTestIdentityProvider();
console.log(`${'first start-up (module load + key)'.padEnd(40)} ${(performance.now() - t0).toFixed(1)} ms`);
const starts: number[] = [];
for (let i = 0; i < 3; i++) {
  const s = performance.now();
  const other = await createTestIdentityProvider();
  starts.push(performance.now() - s);
  await other.close();
}
console.log(`${'later start-up (median of 3)'.padEnd(40)} ${starts.sort((a, b) => a - b)[1]!.toFixed(1)} ms`);

const { privateKey } = await generateKeyPair('RS256');
const baseline = await perOp(
  'baseline jose SignJWT RS256',
  () => new SignJWT({ sub: 'alice', scope: 'read' }).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt' }).setIssuedAt().setExpirationTime('5m').sign(privateKey),
  300,
);
const tokenFor = await perOp('idp.tokenFor()', () => idp.tokenFor({ userId: 'alice', scopes: ['read'] }), 300);
console.log(`ratio tokenFor / baseline: ${(tokenFor / baseline).toFixed(2)}x`);
record({ id: 'tokenfor/signjwt', label: 'test IdP `tokenFor` / jose `SignJWT` (RS256)', value: tokenFor / baseline });

const REDIRECT = 'http://127.0.0.1:9/cb';
const reg = await idp.registerClient({ redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' });
const issuer = new URL(idp.issuer);
const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
const client = { client_id: reg.client_id };
await perOp(
  'authorize() + code exchange (full flow)',
  async () => {
    const verifier = oauth.generateRandomCodeVerifier();
    const url = new URL(as.authorization_endpoint!);
    url.search = new URLSearchParams({
      client_id: reg.client_id,
      redirect_uri: REDIRECT,
      response_type: 'code',
      scope: 'openid',
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }).toString();
    const cb = new URL(await idp.authorize(url, { userId: 'alice' }));
    const params = oauth.validateAuthResponse(as, client, cb, oauth.expectNoState);
    const res = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, verifier, insecure);
    await oauth.processAuthorizationCodeResponse(as, client, res);
  },
  40,
);
await idp.close();
