/**
 * Test helpers: signing keys and tokens, including hostile hand-made ones.
 */
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';

export type TestAlg = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA';

/** A signing key with its public JWK (carrying `kid`, `alg`, `use`). */
export interface TestKey {
  kid: string;
  alg: TestAlg;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

let counter = 0;

/** Generate a fresh key pair for `alg`. */
export async function createTestKey(alg: TestAlg = 'RS256', kid = `k${++counter}-${alg.toLowerCase()}`): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicKey, publicJwk };
}

/** Seconds since the epoch. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Standard claims (valid for five minutes) merged with `overrides`; `undefined` removes a claim. */
export function claims(issuer: string, overrides: Record<string, unknown> = {}): JWTPayload {
  const now = nowSeconds();
  const out: Record<string, unknown> = { iss: issuer, sub: 'user-1', aud: 'api://test', iat: now, exp: now + 300, ...overrides };
  for (const [k, v] of Object.entries(out)) if (v === undefined) delete out[k];
  return out as JWTPayload;
}

/** Sign `payload` with `key`; `header` adds or overrides protected header parameters. */
export async function signToken(key: TestKey, payload: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid, ...header }).sign(key.privateKey);
}

/** An HS256 token (as an attacker could make with a public key as the secret). */
export async function hmacToken(payload: JWTPayload, secret = 'not-so-secret-but-long-enough-for-hs256!!'): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).sign(new TextEncoder().encode(secret));
}

/** base64url of a JSON value or string. */
export function b64url(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return Buffer.from(text, 'utf8').toString('base64url');
}

/** A hand-made compact JWS with the given header, payload and signature segment. */
export function rawToken(header: unknown, payload: unknown, signature = ''): string {
  return `${b64url(header)}.${b64url(payload)}.${signature}`;
}

/** Sign any header and payload by hand (no checks by jose), for RS*, ES* and EdDSA keys. */
export async function signRaw(key: TestKey, header: Record<string, unknown>, payload: unknown): Promise<string> {
  const input = `${b64url({ alg: key.alg, kid: key.kid, ...header })}.${b64url(payload)}`;
  const params: AlgorithmIdentifier | EcdsaParams | RsaPssParams = key.alg.startsWith('ES')
    ? { name: 'ECDSA', hash: `SHA-${key.alg.slice(2)}` }
    : key.alg.startsWith('PS')
      ? { name: 'RSA-PSS', saltLength: Number(key.alg.slice(2)) / 8 }
      : key.alg === 'EdDSA'
        ? { name: 'Ed25519' }
        : { name: 'RSASSA-PKCS1-v1_5' };
  const sig = await crypto.subtle.sign(params, key.privateKey, new TextEncoder().encode(input));
  return `${input}.${Buffer.from(sig).toString('base64url')}`;
}
