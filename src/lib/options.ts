import type { z } from 'zod';
import { configError } from '../errors.js';

/**
 * Validate options with a zod schema once, at construction. A failure throws `CONFIG_INVALID`
 * whose message and `field` name the offending path (e.g. `providers.0.jwksUri`). The message
 * carries zod's issue text, never the offending value.
 *
 * An unknown key is reported before anything else, under its own name: `polices` is a typo of
 * `policies`, and saying "policies is missing" would hide it.
 */
export function parseOptions<S extends z.ZodType>(schema: S, value: unknown, prefix = ''): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues;
  const unknown = issues.find((i) => i.code === 'unrecognized_keys');
  if (unknown !== undefined && unknown.code === 'unrecognized_keys' && unknown.keys.length > 0) {
    const [key, ...others] = unknown.keys;
    const at = unknown.path.map(String);
    // A required sibling that is missing is most likely what the unknown key was meant to be.
    const missing = issues.find(
      (i) => i.code === 'invalid_type' && i.path.length === at.length + 1 && at.every((p, n) => String(i.path[n]) === p) && /received undefined$/.test(i.message),
    );
    const hint = missing !== undefined ? ` (did you mean ${String(missing.path[at.length])}?)` : '';
    const also = others.length > 0 ? `; also unknown: ${others.join(', ')}` : '';
    throw configError(join(prefix, [...at, String(key)]), `is not a known option${hint}${also}`);
  }
  const issue = issues[0];
  const path = join(prefix, (issue?.path ?? []).map(String));
  throw configError(path || '(root)', issue?.message ?? 'invalid');
}

function join(prefix: string, path: string[]): string {
  return [prefix, ...path].filter((p) => p !== '').join('.');
}
