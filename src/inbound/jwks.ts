/**
 * A per-provider JWKS cache: keys are fetched with a timeout and a size bound, re-fetched on an
 * unknown `kid` at most once per cool-down, kept serving while the endpoint fails, and imported
 * into CryptoKeys once per (key, alg).
 *
 * Stale-while-revalidate: a key set past its max age still serves every token whose key it holds,
 * at once, while one background fetch (single flight, bounded by the timeout, cool-down permitting)
 * re-reads it; a failed re-read keeps the old keys. Only an unknown `kid` (or no usable key) and an
 * empty cache wait for a fetch, and then for at most one timeout.
 *
 * @module
 */
import { importJWK, type JWK } from 'jose';
import type { InboundErrors } from './challenge.js';
import { readBoundedBytes } from '../lib/bounded-read.js';
import { nowMs } from '../lib/clock.js';

/** @internal Settings of one JWKS cache. */
export interface JwksSettings {
  uri: string;
  timeoutMs: number;
  cooldownMs: number;
  maxBytes: number;
  maxAgeMs: number;
  fetch: typeof fetch;
  errors: InboundErrors;
}

interface StoredKey {
  jwk: JWK;
  /** Imported keys by alg; `null` when the import failed or the key is unfit. */
  imported: Map<string, CryptoKey | null>;
}

/** Key type and curve required by each supported alg. */
const KEY_TYPE: Record<string, { kty: string; crv?: string }> = {
  RS256: { kty: 'RSA' },
  RS384: { kty: 'RSA' },
  RS512: { kty: 'RSA' },
  PS256: { kty: 'RSA' },
  PS384: { kty: 'RSA' },
  PS512: { kty: 'RSA' },
  ES256: { kty: 'EC', crv: 'P-256' },
  ES384: { kty: 'EC', crv: 'P-384' },
  ES512: { kty: 'EC', crv: 'P-521' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
  Ed25519: { kty: 'OKP', crv: 'Ed25519' },
};

/** After a failed fetch with no keys at all, wait this long (at most) before trying again. */
const EMPTY_RETRY_MS = 1000;

/** @internal One provider's JWKS. */
export class JwksCache {
  readonly #s: JwksSettings;
  #keys: StoredKey[] = [];
  #fingerprint: string | undefined;
  #loadedAt = Number.NEGATIVE_INFINITY;
  #attemptAt = Number.NEGATIVE_INFINITY;
  #inflight: Promise<void> | undefined;
  /** Bumped whenever the key set changes; verified-token cache entries of older generations are void. */
  generation = 0;
  /** Number of HTTP fetches started (for tests and diagnostics). */
  fetches = 0;

  constructor(settings: JwksSettings) {
    this.#s = settings;
  }

  /**
   * The single matching, already imported key, also from a key set past its max age (which then
   * starts a background re-read, see {@link touch}); else undefined (use {@link resolve}).
   */
  cached(kid: string | undefined, alg: string): CryptoKey | undefined {
    if (this.#keys.length === 0) return undefined;
    const found = this.#select(kid, alg);
    if (found.length !== 1) return undefined;
    const k = (found[0] as StoredKey).imported.get(alg);
    if (k == null) return undefined;
    this.touch();
    return k;
  }

  /** Start a background refetch when the key set is past its max age (cool-down permitting). Cheap when it is not. */
  touch(): void {
    if (this.#inflight !== undefined) return;
    const now = nowMs();
    if (now - this.#loadedAt > this.#s.maxAgeMs && now - this.#attemptAt >= this.#s.cooldownMs) {
      void this.#refresh();
    }
  }

  /**
   * The keys that may have signed a token with this `kid` and `alg`. When the cached set holds a
   * usable one, it is returned at once (a set past its max age is re-read in the background). Else
   * the caller waits for one fetch: it joins the one under way, or starts one (at most once per
   * cool-down; with no keys at all, at most once per `min(cool-down, 1 s)`). Throws
   * `JWKS_UNAVAILABLE` when no keys can be had at all, `TOKEN_SIGNATURE_INVALID` when none matches
   * or when several keys share the token's `kid`.
   */
  async resolve(kid: string | undefined, alg: string): Promise<CryptoKey[]> {
    if (this.#keys.length > 0) {
      const found = this.#select(kid, alg);
      if (found.length > 0) {
        const keys = await this.#usable(found, kid, alg);
        if (keys.length > 0) {
          this.touch(); // stale-while-revalidate: never wait for a re-read of a set that has the key
          return keys;
        }
      }
    }
    // The key is not known (or not usable): wait for a fetch. Join one already under way (single
    // flight); a caller that waited for one does not start another, so one verification waits for
    // at most one JWKS timeout.
    const joined = this.#inflight !== undefined;
    if (joined) {
      await this.#inflight;
    } else {
      const now = nowMs();
      const wait = this.#keys.length === 0 ? Math.min(this.#s.cooldownMs, EMPTY_RETRY_MS) : this.#s.cooldownMs;
      if (now - this.#attemptAt >= wait) await this.#refresh(); // failures keep what we have
    }
    if (this.#keys.length === 0) {
      throw this.#s.errors.error('JWKS_UNAVAILABLE', 'The identity provider keys are unavailable');
    }
    const found = this.#select(kid, alg);
    if (found.length === 0) {
      throw this.#s.errors.error('TOKEN_SIGNATURE_INVALID', 'No key of the identity provider matches the token');
    }
    const keys = await this.#usable(found, kid, alg);
    if (keys.length === 0) {
      throw this.#s.errors.error('TOKEN_SIGNATURE_INVALID', 'The matching key of the identity provider is unusable');
    }
    return keys;
  }

  /** The imported keys among `found` (at most 4); throws when several keys share the token's `kid`. */
  async #usable(found: StoredKey[], kid: string | undefined, alg: string): Promise<CryptoKey[]> {
    if (kid !== undefined && found.length > 1) {
      throw this.#s.errors.error('TOKEN_SIGNATURE_INVALID', 'Several keys of the identity provider share the token kid');
    }
    const out: CryptoKey[] = [];
    for (let i = 0; i < found.length && i < 4; i++) {
      const imported = await this.#import(found[i] as StoredKey, alg);
      if (imported) out.push(imported);
    }
    return out;
  }

  #select(kid: string | undefined, alg: string): StoredKey[] {
    if (!Object.hasOwn(KEY_TYPE, alg)) return [];
    const want = KEY_TYPE[alg] as { kty: string; crv?: string };
    const out: StoredKey[] = [];
    for (const key of this.#keys) {
      const jwk = key.jwk;
      if (kid !== undefined && jwk.kid !== kid) continue;
      if (jwk.kty !== want.kty) continue;
      if (want.crv !== undefined && jwk.crv !== want.crv) continue;
      if (jwk.alg !== undefined && jwk.alg !== alg && !(isEd(jwk.alg) && isEd(alg))) continue;
      out.push(key);
    }
    return out;
  }

  async #import(key: StoredKey, alg: string): Promise<CryptoKey | null> {
    const have = key.imported.get(alg);
    if (have !== undefined) return have;
    let result: CryptoKey | null = null;
    try {
      const { alg: _ignored, ...jwk } = key.jwk;
      void _ignored;
      const k = await importJWK({ ...jwk, ext: false }, alg === 'Ed25519' ? 'EdDSA' : alg);
      if (k instanceof Uint8Array || k.type !== 'public') result = null;
      else if (k.algorithm.name.startsWith('RSA') && (k.algorithm as RsaHashedKeyAlgorithm).modulusLength < 2048) result = null;
      else result = k;
    } catch {
      result = null;
    }
    key.imported.set(alg, result);
    return result;
  }

  /** Fetch the key set, once for all concurrent callers. Never throws. */
  #refresh(): Promise<void> {
    if (this.#inflight) return this.#inflight;
    this.#attemptAt = nowMs();
    this.#inflight = this.#load().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #load(): Promise<void> {
    this.fetches++;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.#s.timeoutMs);
    let keys: JWK[];
    try {
      const res = await this.#s.fetch(this.#s.uri, {
        headers: { accept: 'application/json, application/jwk-set+json' },
        redirect: 'manual', // a redirect is a failure (status 3xx, or 0 for an opaque redirect), never followed
        signal: controller.signal,
      });
      if (!res.ok) {
        await res.body?.cancel().catch(() => {});
        return;
      }
      const text = await readBounded(res, this.#s.maxBytes);
      if (text === undefined) return;
      keys = parseJwks(text);
    } catch {
      return; // network error, timeout, oversized or invalid answer: keep what we have
    } finally {
      clearTimeout(timer);
    }
    this.#attemptAt = nowMs();
    this.#loadedAt = this.#attemptAt;
    const fingerprint = JSON.stringify(keys);
    if (fingerprint === this.#fingerprint) return;
    const previous = new Map<string, StoredKey>();
    for (const k of this.#keys) previous.set(JSON.stringify(k.jwk), k);
    this.#keys = keys.map((jwk) => previous.get(JSON.stringify(jwk)) ?? { jwk, imported: new Map() });
    if (this.#fingerprint !== undefined) this.generation++;
    this.#fingerprint = fingerprint;
  }
}

function isEd(alg: string): boolean {
  return alg === 'EdDSA' || alg === 'Ed25519';
}

/** Read a response body, giving up (undefined) past `maxBytes`. */
async function readBounded(res: Response, maxBytes: number): Promise<string | undefined> {
  const declared = res.headers.get('content-length');
  if (declared !== null && Number(declared) > maxBytes) {
    await res.body?.cancel().catch(() => {});
    return undefined;
  }
  if (!res.body) return '';
  const bytes = await readBoundedBytes(res.body, maxBytes);
  return bytes === undefined ? undefined : new TextDecoder('utf-8', { fatal: true }).decode(bytes);
}

/** The public signing keys of a JWK Set; private, encryption-only and malformed entries are dropped. */
function parseJwks(text: string): JWK[] {
  const doc: unknown = JSON.parse(text);
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { keys?: unknown }).keys)) {
    throw new TypeError('not a JWK Set');
  }
  const out: JWK[] = [];
  for (const k of (doc as { keys: unknown[] }).keys) {
    if (typeof k !== 'object' || k === null || Array.isArray(k)) continue;
    const jwk = k as Record<string, unknown>;
    if (typeof jwk.kty !== 'string') continue;
    if ('d' in jwk || 'p' in jwk || 'k' in jwk) continue; // private or symmetric material: never trusted
    if (jwk.use !== undefined && jwk.use !== 'sig') continue;
    if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) continue;
    if (jwk.kid !== undefined && typeof jwk.kid !== 'string') continue;
    if (jwk.alg !== undefined && typeof jwk.alg !== 'string') continue;
    out.push(jwk as JWK);
  }
  return out;
}

