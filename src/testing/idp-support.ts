// The test identity provider's plumbing: loading oidc-provider, reading request bodies, a cookie
// jar for its interaction pages, and signing keys. Node only (agent-iam/testing).
import type { IncomingMessage } from 'node:http';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { AgentIamError } from '../errors.js';
import type { SigningKey } from './token-exchange.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type OidcModule = { default: any; errors: any };
let modulePromise: Promise<OidcModule> | undefined;

/**
 * Load oidc-provider without touching anything process-wide. Its entry module (`lib/index.js`) only
 * prints "Unsupported runtime" under Node < 22 and re-exports `lib/provider.js` and
 * `lib/helpers/errors.js`; the package has no `exports` map, so those two are imported directly and
 * the warning is never printed (nothing is filtered: the global `console` is left as it is). Should a
 * later oidc-provider move them, the entry module is used and its warning shows. Without the package,
 * a typed `CONFIG_INVALID` says what to install.
 */
export function loadOidcProvider(): Promise<OidcModule> {
  modulePromise ??= (async (): Promise<OidcModule> => {
    try {
      const [{ Provider }, errors] = await Promise.all([
        import('oidc-provider/lib/provider.js') as Promise<{ Provider: unknown }>,
        import('oidc-provider/lib/helpers/errors.js') as Promise<Record<string, unknown>>,
      ]);
      if (typeof Provider === 'function' && typeof errors.InvalidRequest === 'function') return { default: Provider, errors };
    } catch {
      // not there (or laid out differently): the entry module below says which
    }
    try {
      return (await import('oidc-provider')) as OidcModule;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
        throw new AgentIamError(
          'CONFIG_INVALID',
          'agent-iam/testing needs the optional peer dependency "oidc-provider" (v9): npm install --save-dev oidc-provider@^9',
          { field: 'oidc-provider', cause: error },
        );
      }
      throw error;
    }
  })();
  modulePromise.catch(() => {
    modulePromise = undefined; // installed later (or fixed): the next call tries again
  });
  return modulePromise;
}

export function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    req.on('data', (chunk: Uint8Array) => {
      size += chunk.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(new TextDecoder().decode(concat(chunks))));
    req.on('error', reject);
  });
}

/**
 * Read a request body and give it back to the stream (`readable.unshift`, before `end` is emitted),
 * so that oidc-provider still reads and parses the body itself, as it expects (handing it over in
 * `req.body` instead makes it warn). `rewrite` may replace what it will read; `content-length`
 * follows. Resolves with the body as sent.
 */
export function peekBody(req: IncomingMessage, rewrite?: (body: string) => string, limit = 64 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      req.off('readable', onReadable);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onError = (error: unknown): void => {
      done();
      reject(error);
    };
    const onEnd = (): void => {
      // only an empty body ends before it was complete in a readable handler: nothing to give back
      done();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    function onReadable(): void {
      let chunk: Buffer | null;
      while ((chunk = req.read() as Buffer | null) !== null) {
        size += chunk.length;
        if (size > limit) {
          done();
          req.destroy();
          reject(new Error('body too large'));
          return;
        }
        chunks.push(chunk);
      }
      if (!req.complete) return;
      done();
      const raw = Buffer.concat(chunks).toString('utf8');
      let bytes: Buffer;
      try {
        bytes = Buffer.from(rewrite === undefined ? raw : rewrite(raw), 'utf8');
      } catch (error) {
        reject(error);
        return;
      }
      req.headers['content-length'] = String(bytes.length);
      delete req.headers['transfer-encoding'];
      // Synchronously, in the same turn as the last read: the stream has not emitted `end` yet.
      if (bytes.length > 0) req.unshift(bytes);
      resolve(raw);
    }
    req.on('readable', onReadable);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/** A form body as an object; a repeated parameter (e.g. `audience`) becomes an array, as oidc-provider expects. */
export function formToObject(raw: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of new URLSearchParams(raw)) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

export function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A tiny cookie jar for one headless browser session. */
export class CookieJar {
  readonly #cookies = new Map<string, string>();
  store(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const pair = line.split(';', 1)[0] ?? '';
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }
  header(): string {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

/** A fresh RS256 signing key with its JWKs. */
export async function newKey(): Promise<{ key: SigningKey; privateJwk: JWK; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = `test-${crypto.randomUUID()}`;
  const meta = { kid, alg: 'RS256', use: 'sig' };
  return {
    key: { kid, privateKey, publicKey },
    privateJwk: { ...(await exportJWK(privateKey)), ...meta },
    publicJwk: { ...(await exportJWK(publicKey)), ...meta },
  };
}
