/**
 * Secrets from where production keeps them. Every secret option (a tool's API key, a connection's
 * client secret, the encryption keys) takes a {@link SecretSource}: the value itself, an `{ env }`
 * reference, or a function that loads it (AWS Secrets Manager, Vault, GCP Secret Manager). A loaded
 * value is cached for `ttlSeconds` and loaded again after it, or at once when the party it was sent to
 * refused it (a rotated key), so a rotation needs no restart. The value is never logged and never in
 * an error; a failing source is a typed error at call time (`TOKEN_ENDPOINT_UNAVAILABLE`, `reason:
 * 'secret_unavailable'`), never a crash.
 *
 * @module
 */
import { z } from 'zod';
import { AgentIamError, tokenEndpointUnavailable } from '../errors.js';
import { nowMs } from './clock.js';

/** A loader for a secret: the secret manager call. */
export type SecretLoader = () => string | Promise<string>;

/**
 * Where a secret comes from.
 *
 * - a string: the value (from your config, or `process.env.X!`);
 * - `{ env: 'NAME' }`: the environment variable `NAME`, read at each use (Node, Bun, Deno with `--allow-env`);
 * - a function, or `{ load, ttlSeconds }`: called when needed, its value cached for `ttlSeconds`
 *   (default 300) and reloaded at once when the receiver refuses it.
 *
 * @example
 * ```ts
 * import { SecretsManagerClient, GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
 * const sm = new SecretsManagerClient({});
 * const stripeKey: SecretSource = {
 *   load: async () => (await sm.send(new GetSecretValueCommand({ SecretId: 'prod/stripe' }))).SecretString ?? '',
 *   ttlSeconds: 600,
 * };
 * ```
 */
export type SecretSource = string | { env: string } | SecretLoader | { load: SecretLoader; ttlSeconds?: number };

const DEFAULT_TTL_SECONDS = 300;

/** The zod schema of a secret option: a non-empty string (checked by `value`), `{ env }`, a function, `{ load, ttlSeconds }`. */
export function secretSchema(value: z.ZodString): z.ZodType<SecretSource> {
  const fn = z.custom<SecretLoader>((v) => typeof v === 'function', 'must be a function');
  return z.union(
    [
      value,
      z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,255}$/, 'must be an environment variable name') }),
      fn,
      z.strictObject({ load: fn, ttlSeconds: z.number().min(0).max(86_400).optional() }),
    ],
    { error: 'must be a string, { env }, a function or { load, ttlSeconds }' },
  ) as unknown as z.ZodType<SecretSource>;
}

/** Reads one secret. */
export interface SecretReader {
  /** The value when the source is a literal (no await needed on the hot path). */
  readonly literal: string | undefined;
  /** The current value; throws `TOKEN_ENDPOINT_UNAVAILABLE` (`reason: 'secret_unavailable'`) when it cannot be had. */
  get(): Promise<string>;
  /** The receiver refused `value`: load again on the next use (only if it is still the cached one). */
  refused(value: string): void;
  /** Forget the cached value: the next use loads again. */
  reload(): void;
  /** True when the value comes from a loader (a reload can give another value). */
  readonly loaded: boolean;
}

function unavailable(what: string): AgentIamError {
  // The loader's own error is dropped: it may quote the secret manager's answer or its token.
  return tokenEndpointUnavailable(`${what}: the secret could not be read`, 'secret_unavailable');
}

function readEnv(name: string): string | undefined {
  const g = globalThis as { process?: { env?: Record<string, string | undefined> }; Deno?: { env?: { get(n: string): string | undefined } } };
  return g.process?.env?.[name] ?? g.Deno?.env?.get(name);
}

/**
 * A reader for `source`. `what` names the secret in errors (`tool stripe: apiKey`), `valid` checks a
 * loaded value (a value that fails it is an unavailable secret, never sent).
 */
export function secretReader(source: SecretSource, what: string, valid: (value: string) => boolean): SecretReader {
  if (typeof source === 'string') {
    return { literal: source, loaded: false, get: () => Promise.resolve(source), refused: () => {}, reload: () => {} };
  }
  if (typeof source === 'object' && 'env' in source) {
    const name = source.env;
    return {
      literal: undefined,
      loaded: false,
      get: async () => {
        const v = readEnv(name);
        if (v === undefined || v === '' || !valid(v)) throw unavailable(what);
        return v;
      },
      refused: () => {},
      reload: () => {},
    };
  }
  const load = typeof source === 'function' ? source : source.load;
  const ttlMs = (typeof source === 'function' ? DEFAULT_TTL_SECONDS : source.ttlSeconds ?? DEFAULT_TTL_SECONDS) * 1000;
  let cached: { value: string; until: number } | undefined;
  let inflight: Promise<string> | undefined;
  return {
    literal: undefined,
    loaded: true,
    get: () => {
      if (cached !== undefined && cached.until > nowMs()) return Promise.resolve(cached.value);
      inflight ??= (async () => {
        let v: unknown;
        try {
          v = await load();
        } catch {
          throw unavailable(what);
        } finally {
          inflight = undefined;
        }
        if (typeof v !== 'string' || v === '' || !valid(v)) throw unavailable(what);
        cached = { value: v, until: nowMs() + ttlMs };
        return v;
      })();
      return inflight;
    },
    refused: (value) => {
      if (cached?.value === value) cached = undefined;
    },
    reload: () => {
      cached = undefined;
    },
  };
}
