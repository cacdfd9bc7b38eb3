/**
 * Internal: the parts of a protected resource's `WWW-Authenticate: Bearer …` challenge (RFC 6750
 * §3, RFC 9728 §5.1) that a client acts on.
 *
 * @module
 */

/** What a Bearer challenge names. Values are bounded and free of control characters. */
export interface BearerChallenge {
  error?: string;
  scopes?: string[];
  resourceMetadata?: string;
}

const PARAM = /([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))/g;

/** Parse the first Bearer challenge of a `WWW-Authenticate` value (others, e.g. DPoP, are skipped). */
export function parseBearerChallenge(header: string): BearerChallenge {
  const out: BearerChallenge = {};
  if (typeof header !== 'string' || header.length > 8192) return out;
  const start = header.search(/(?:^|,)\s*Bearer(?:\s|$)/i);
  if (start === -1) return out;
  const rest = header.slice(start).replace(/^\s*,?\s*Bearer/i, '');
  for (const m of rest.matchAll(PARAM)) {
    const name = (m[1] as string).toLowerCase();
    const value = (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1');
    if (/[\u0000-\u001f\u007f]/.test(value) || value.length > 2048) continue;
    if (name === 'error' && out.error === undefined) out.error = value;
    else if (name === 'scope' && out.scopes === undefined) {
      const scopes = value.split(' ').filter((x) => x !== '');
      if (scopes.length > 0 && scopes.length <= 100) out.scopes = scopes;
    } else if (name === 'resource_metadata' && out.resourceMetadata === undefined) out.resourceMetadata = value;
  }
  return out;
}
