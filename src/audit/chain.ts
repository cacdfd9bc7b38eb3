/**
 * Tamper evidence for JSON-lines audit logs: each line carries `prevHash`, the SHA-256 (hex) of the
 * previous line's exact text.
 *
 * @module
 */
import { sha256Hex } from '../lib/encoding.js';

/** `prevHash` of the first line of a chain: 64 zeros. */
export const AUDIT_CHAIN_GENESIS = '0'.repeat(64);

/** Options of {@link verifyAuditChain}. */
export interface VerifyAuditChainOptions {
  /** `prevHash` expected on the first line (default {@link AUDIT_CHAIN_GENESIS}). */
  genesis?: string;
  /**
   * The hash of the last line, kept somewhere the log's writer cannot change (a database, a
   * notary, another host). Without it an edit of the very last line, or lines cut off the end,
   * cannot be detected.
   */
  lastHash?: string;
}

/** The result of {@link verifyAuditChain}. */
export type VerifyAuditChainResult =
  | { ok: true; count: number; /** hash of the last line (the genesis when empty): anchor it. */ lastHash: string }
  | { ok: false; /** 1-based number of the first line where the chain breaks. */ line: number; reason: string };

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Check a hash-chained JSON-lines audit log written by `jsonLinesAudit(stream, { hashChain: true })`.
 *
 * Line `n` is accepted when it is a JSON object whose `prevHash` equals the SHA-256 of line `n - 1`
 * (the genesis for line 1). An edited line is reported at the line after it (whose `prevHash` no
 * longer matches); a removed, inserted or moved line at the first line out of place. A trailing
 * newline is ignored and a trailing `\r` on each line is stripped.
 *
 * The chain has no key: someone who can rewrite the whole file can rebuild it. Anchor `lastHash`
 * elsewhere and pass it back to detect that, and to detect an edit of the last line or truncation.
 *
 * @example
 * ```ts
 * const result = await verifyAuditChain(await readFile('audit.jsonl', 'utf8'));
 * if (!result.ok) console.error(`audit log broken at line ${result.line}: ${result.reason}`);
 * ```
 */
export async function verifyAuditChain(lines: string[] | string, options: VerifyAuditChainOptions = {}): Promise<VerifyAuditChainResult> {
  const list = typeof lines === 'string' ? lines.split('\n') : [...lines];
  if (typeof lines === 'string' && list.length > 0 && list[list.length - 1] === '') list.pop();
  let prev = options.genesis ?? AUDIT_CHAIN_GENESIS;
  for (let i = 0; i < list.length; i++) {
    let line = list[i];
    const n = i + 1;
    if (typeof line !== 'string') return { ok: false, line: n, reason: 'not a string' };
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line === '') return { ok: false, line: n, reason: 'empty line' };
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return { ok: false, line: n, reason: 'not valid JSON' };
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { ok: false, line: n, reason: 'not a JSON object' };
    const prevHash = (parsed as { prevHash?: unknown }).prevHash;
    if (typeof prevHash !== 'string' || !HEX64.test(prevHash)) return { ok: false, line: n, reason: 'missing or malformed prevHash' };
    if (prevHash !== prev) {
      return {
        ok: false,
        line: n,
        reason:
          n === 1
            ? 'prevHash is not the genesis value (lines were removed or inserted before it)'
            : `prevHash does not match line ${n - 1} (line ${n - 1} was altered, or lines were removed, inserted or reordered here)`,
      };
    }
    prev = await sha256Hex(line);
  }
  if (options.lastHash !== undefined && options.lastHash.toLowerCase() !== prev) {
    return { ok: false, line: Math.max(1, list.length), reason: 'the last line does not match the anchored hash (altered, or lines cut off the end)' };
  }
  return { ok: true, count: list.length, lastHash: prev };
}
