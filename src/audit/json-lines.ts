/**
 * Built-in audit sinks: JSON lines (optionally hash-chained) and an in-memory array.
 *
 * @module
 */
import { configError } from '../errors.js';
import { sha256Hex } from '../lib/encoding.js';
import type { AuditEvent } from './events.js';
import { AUDIT_CHAIN_GENESIS } from './chain.js';
import { redactEvent } from './redact.js';

/** Where {@link jsonLinesAudit} writes: a Node writable (`process.stdout`, `fs.createWriteStream`), a WHATWG `WritableStream<string>`, or a function. */
export type AuditLineTarget = { write(line: string): unknown } | WritableStream<string> | ((line: string) => void);

/** Options of {@link jsonLinesAudit}. */
export interface JsonLinesAuditOptions {
  /** Add `prevHash` (SHA-256 hex of the previous line) to every line. Default false. */
  hashChain?: boolean;
  /**
   * With `hashChain`: the hash of the last line already in the log, to continue a chain after a
   * restart (`verifyAuditChain(existing).lastHash`). Default: the genesis (64 zeros).
   */
  previousHash?: string;
}

/** An audit sink that writes JSON lines. */
export interface JsonLinesAudit {
  /** Write one event as one line. Resolves when the line was handed to the target. */
  write(event: AuditEvent): Promise<void>;
  /** Resolves when every event written so far has been handed to the target. */
  flush(): Promise<void>;
}

function isWritableStream(value: unknown): value is WritableStream<string> {
  return typeof value === 'object' && value !== null && typeof (value as WritableStream).getWriter === 'function';
}

/**
 * An audit sink that writes one JSON line per event (`\n`-terminated), with a stable key order and
 * only the fields {@link AuditEvent} declares (see `redactEvent`). With `hashChain: true` each line
 * carries `prevHash`, the SHA-256 of the previous line, computed in event order; check a log with
 * `verifyAuditChain`.
 *
 * If the target fails for one line, that line is missing and the chain continues from the last
 * line written, so the file stays verifiable; the failed `write` promise rejects.
 *
 * @example
 * ```ts
 * import { createWriteStream } from 'node:fs';
 * const audit = jsonLinesAudit(createWriteStream('audit.jsonl', { flags: 'a' }), { hashChain: true });
 * const toolFetch = createToolFetch({ agent, tools, policies, audit });
 * ```
 */
export function jsonLinesAudit(target: AuditLineTarget, options: JsonLinesAuditOptions = {}): JsonLinesAudit {
  let writer: WritableStreamDefaultWriter<string> | undefined;
  const out = (text: string): unknown => {
    if (typeof target === 'function') return target(text);
    if (isWritableStream(target)) {
      writer ??= target.getWriter();
      return writer.write(text);
    }
    return target.write(text);
  };

  if (options.hashChain !== true) {
    let last: Promise<void> = Promise.resolve();
    return {
      write(event: AuditEvent): Promise<void> {
        try {
          const result = out(`${JSON.stringify(redactEvent(event))}\n`);
          const p = result instanceof Promise ? result.then(() => undefined) : Promise.resolve();
          last = p.catch(() => undefined);
          return p;
        } catch (e) {
          return Promise.reject(e);
        }
      },
      flush: () => last,
    };
  }

  let prev = options.previousHash ?? AUDIT_CHAIN_GENESIS;
  if (!/^[0-9a-f]{64}$/.test(prev)) throw configError('previousHash', 'must be 64 lower-case hex characters');
  let tail: Promise<void> = Promise.resolve();
  return {
    write(event: AuditEvent): Promise<void> {
      // Serialize now, so later mutation of the caller's object cannot change what is logged.
      const redacted = redactEvent(event) as AuditEvent;
      const step = async (): Promise<void> => {
        const line = JSON.stringify({ ...redacted, prevHash: prev });
        await out(`${line}\n`);
        prev = await sha256Hex(line);
      };
      const p = tail.then(step);
      tail = p.catch(() => undefined);
      return p;
    },
    flush: () => tail,
  };
}

/** An in-memory audit sink. */
export interface MemoryAudit {
  /** Every event received, redacted, in order. */
  readonly events: AuditEvent[];
  write(event: AuditEvent): void;
  /** Forget all events. */
  clear(): void;
}

/**
 * An audit sink that keeps events in an array: handy in tests and examples.
 *
 * @example
 * ```ts
 * const audit = memoryAudit();
 * const toolFetch = createToolFetch({ agent, tools, policies, audit });
 * await toolFetch(url);
 * audit.events.at(-1)?.decision; // 'allow'
 * ```
 */
export function memoryAudit(): MemoryAudit {
  const events: AuditEvent[] = [];
  return {
    events,
    write(event: AuditEvent): void {
      events.push(redactEvent(event));
    },
    clear(): void {
      events.length = 0;
    },
  };
}
