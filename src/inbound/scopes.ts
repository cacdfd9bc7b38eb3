/**
 * Scopes of a verified token: `scope` (RFC 8693 / RFC 9068, space separated) or `scp`
 * (array or space-separated string, as Entra and Okta send it).
 *
 * @module
 */

const EMPTY: readonly string[] = Object.freeze([]);

/** @internal The granted scopes of a payload, frozen. Non-string entries are ignored. */
export function scopesOf(payload: Record<string, unknown>): readonly string[] {
  const scope = payload.scope;
  if (typeof scope === 'string') return splitScopes(scope);
  const scp = payload.scp;
  if (typeof scp === 'string') return splitScopes(scp);
  if (Array.isArray(scp)) {
    const out: string[] = [];
    for (const s of scp) if (typeof s === 'string' && s !== '') out.push(s);
    return out.length === 0 ? EMPTY : Object.freeze(out);
  }
  return EMPTY;
}

function splitScopes(value: string): readonly string[] {
  if (value === '') return EMPTY;
  const parts = value.split(' ');
  const out: string[] = [];
  for (const p of parts) if (p !== '') out.push(p);
  return out.length === 0 ? EMPTY : Object.freeze(out);
}

/** @internal The required scopes that `granted` lacks (empty when all are held). */
export function missingScopes(granted: readonly string[], required: readonly string[]): string[] {
  const missing: string[] = [];
  for (const s of required) if (!granted.includes(s)) missing.push(s);
  return missing;
}
