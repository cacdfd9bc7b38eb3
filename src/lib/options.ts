import type { z } from 'zod';
import { configError } from '../errors.js';

/**
 * Validate options with a zod schema once, at construction. A failure throws `CONFIG_INVALID`
 * whose message and `field` name the offending path (e.g. `providers.0.jwksUri`). The message
 * carries zod's issue text, never the offending value.
 */
export function parseOptions<S extends z.ZodType>(schema: S, value: unknown, prefix = ''): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = [prefix, ...(issue?.path ?? []).map(String)].filter((p) => p !== '').join('.');
  throw configError(path || '(root)', issue?.message ?? 'invalid');
}
