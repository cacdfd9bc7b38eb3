/**
 * Internal: the private key a connection authenticates with at the token endpoint
 * (`private_key_jwt`, RFC 7523 §2.2 / OpenID Connect Core §9). The key is imported once per
 * connection as a non-extractable WebCrypto key; only its public half is ever read back, for dynamic
 * registration (`jwks`). Neither the PEM nor the key reaches an error, a log line or an audit event.
 *
 * @module
 */
import { exportJWK, importJWK, importPKCS8, type JWK } from 'jose';
import type * as oauth from 'oauth4webapi';
import { AgentIamError } from '../errors.js';
import type { Connection } from './connections.js';

/** Signing algorithms accepted for client assertions (asymmetric only). */
export const CLIENT_KEY_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;
export type ClientKeyAlg = (typeof CLIENT_KEY_ALGS)[number];

/** A loaded client key: what oauth4webapi signs with, and the public JWK to register. */
export interface ClientKey {
  key: oauth.PrivateKey;
  alg: ClientKeyAlg;
  publicJwk: JWK;
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

const loaded = new WeakMap<Connection, Promise<ClientKey>>();

function badKey(c: Connection, why: string): AgentIamError {
  return new AgentIamError('CONFIG_INVALID', `connection ${c.id}: clientPrivateKey ${why}`, { field: 'clientPrivateKey' });
}

/** The algorithm a JWK names or implies; undefined when it cannot be told. */
function algOfJwk(jwk: JWK): ClientKeyAlg | undefined {
  if (typeof jwk.alg === 'string') return (CLIENT_KEY_ALGS as readonly string[]).includes(jwk.alg) ? (jwk.alg as ClientKeyAlg) : undefined;
  if (jwk.kty === 'RSA') return 'RS256';
  if (jwk.kty === 'EC') return jwk.crv === 'P-256' ? 'ES256' : jwk.crv === 'P-384' ? 'ES384' : jwk.crv === 'P-521' ? 'ES512' : undefined;
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  return undefined;
}

async function load(c: Connection): Promise<ClientKey> {
  const source = c.clientPrivateKey;
  if (source === undefined) throw badKey(c, 'is required for private_key_jwt');
  let extractable: CryptoKey | undefined;
  let alg = c.clientPrivateKeyAlg;
  if (typeof source === 'string') {
    // PKCS#8 PEM. Without an algorithm, try the usual ones: the import itself tells key type and curve.
    const tries: readonly ClientKeyAlg[] = alg !== undefined ? [alg] : ['ES256', 'RS256', 'ES384', 'ES512', 'EdDSA'];
    for (const a of tries) {
      try {
        extractable = (await importPKCS8(source, a, { extractable: true })) as CryptoKey;
        alg = a;
        break;
      } catch {
        // not this algorithm
      }
    }
    if (extractable === undefined) throw badKey(c, `is not a PKCS#8 PEM private key${c.clientPrivateKeyAlg ? ` for ${c.clientPrivateKeyAlg}` : ''}`);
  } else {
    const jwk = source as JWK;
    if (typeof jwk.d !== 'string') throw badKey(c, 'is a JWK without its private part');
    alg ??= algOfJwk(jwk);
    if (alg === undefined) throw badKey(c, 'is a JWK of an unsupported type; set clientPrivateKeyAlg');
    try {
      extractable = (await importJWK(jwk, alg, { extractable: true })) as CryptoKey;
    } catch {
      throw badKey(c, `is not a usable ${alg} private JWK`);
    }
  }
  const full = await exportJWK(extractable);
  const publicJwk: JWK = { ...full };
  for (const m of PRIVATE_MEMBERS) delete publicJwk[m];
  delete publicJwk.ext;
  delete publicJwk.key_ops;
  publicJwk.alg = alg as string;
  publicJwk.use = 'sig';
  const kid = c.clientPrivateKeyId ?? (typeof source === 'object' && typeof (source as JWK).kid === 'string' ? (source as JWK).kid : undefined);
  if (kid !== undefined) publicJwk.kid = kid;
  // Sign with a non-extractable copy; the extractable one goes out of scope here.
  const { ext: _ext, key_ops: _ops, ...material } = full;
  const key = (await importJWK(material, alg as string, { extractable: false })) as CryptoKey;
  return { key: kid !== undefined ? { key, kid } : { key }, alg: alg as ClientKeyAlg, publicJwk };
}

/** The connection's client key, imported once (a failed import is not cached, so a fixed config works without a restart). */
export function clientKey(c: Connection): Promise<ClientKey> {
  let p = loaded.get(c);
  if (p === undefined) {
    p = load(c);
    loaded.set(c, p);
    p.catch(() => loaded.delete(c));
  }
  return p;
}
