import { describe, expect, it } from 'vitest';
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { AuditEvent } from '../../src/audit/events.js';
import { emitAudit } from '../../src/audit/events.js';
import { jsonLinesAudit, memoryAudit } from '../../src/audit/json-lines.js';
import { AUDIT_CHAIN_GENESIS, verifyAuditChain } from '../../src/audit/chain.js';
import { redactEvent } from '../../src/audit/redact.js';

const ev = (i: number, over: Partial<AuditEvent> = {}): AuditEvent => ({
  type: 'tool.request',
  time: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
  agentId: 'support-agent',
  userId: `user-${i}`,
  tool: 'stripe',
  method: 'GET',
  path: `/v1/charges/${i}`,
  decision: 'allow',
  status: 200,
  durationMs: i,
  requestId: `req-${i}`,
  ...over,
});

async function chainOf(n: number): Promise<string[]> {
  const lines: string[] = [];
  const sink = jsonLinesAudit((l) => void lines.push(l), { hashChain: true });
  for (let i = 0; i < n; i++) void sink.write(ev(i));
  await sink.flush();
  return lines.map((l) => l.replace(/\n$/, ''));
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('jsonLinesAudit', () => {
  it('one JSON line per event, stable key order, unknown fields and query strings dropped', async () => {
    const out: string[] = [];
    const sink = jsonLinesAudit({ write: (l: string) => out.push(l) });
    const messy = {
      requestId: 'r1',
      decision: 'deny',
      path: '/v1/x?api_key=s3cr3t#frag',
      type: 'tool.request',
      time: '2026-01-01T00:00:00.000Z',
      authorization: 'Bearer eyJhbGciOi.secret',
      code: 'POLICY_DENIED',
      actorChain: ['a1', 42],
      prevHash: 'f'.repeat(64),
      status: Number.NaN,
    } as unknown as AuditEvent;
    await sink.write(messy);
    await sink.write({ time: 't', type: 'inbound.verify', decision: 'allow' });
    expect(out).toHaveLength(2);
    expect(out.every((l) => l.endsWith('\n') && l.indexOf('\n') === l.length - 1)).toBe(true);
    expect(out[0]).toBe(
      '{"type":"tool.request","time":"2026-01-01T00:00:00.000Z","requestId":"r1","actorChain":["a1"],"path":"/v1/x","decision":"deny","code":"POLICY_DENIED"}\n',
    );
    expect(out[1]).toBe('{"type":"inbound.verify","time":"t","decision":"allow"}\n');
    expect(out.join('')).not.toMatch(/s3cr3t|secret|eyJ|frag/);
  });

  it('writes to a WHATWG WritableStream in order', async () => {
    const got: string[] = [];
    const stream = new WritableStream<string>({
      write: async (chunk) => {
        await new Promise((r) => setTimeout(r, Math.random() * 3));
        got.push(chunk);
      },
    });
    const sink = jsonLinesAudit(stream, { hashChain: true });
    await Promise.all(Array.from({ length: 20 }, (_, i) => sink.write(ev(i))));
    expect(got.map((l) => JSON.parse(l).requestId)).toEqual(Array.from({ length: 20 }, (_, i) => `req-${i}`));
    expect(await verifyAuditChain(got.join(''))).toMatchObject({ ok: true, count: 20 });
  });

  it('hash chain: first prevHash is the genesis, each next is SHA-256 of the previous line, in order despite async hashing', async () => {
    const lines = await chainOf(50);
    expect(JSON.parse(lines[0]!).prevHash).toBe(AUDIT_CHAIN_GENESIS);
    for (let i = 1; i < lines.length; i++) expect(JSON.parse(lines[i]!).prevHash).toBe(sha(lines[i - 1]!));
    expect(lines.map((l) => JSON.parse(l).requestId)).toEqual(Array.from({ length: 50 }, (_, i) => `req-${i}`));
    const result = await verifyAuditChain(lines);
    expect(result).toEqual({ ok: true, count: 50, lastHash: sha(lines[49]!) });
  });

  it('a caller cannot inject its own prevHash', async () => {
    const lines = await chainOf(0);
    const out: string[] = [];
    const sink = jsonLinesAudit((l) => void out.push(l), { hashChain: true });
    await sink.write(ev(1, { prevHash: 'a'.repeat(64) }));
    expect(JSON.parse(out[0]!).prevHash).toBe(AUDIT_CHAIN_GENESIS);
    expect(lines).toEqual([]);
  });

  it('a failing target loses that line but the chain stays verifiable; the write rejects', async () => {
    const out: string[] = [];
    let n = 0;
    const sink = jsonLinesAudit(
      (l) => {
        if (n++ === 2) throw new Error('disk full');
        out.push(l);
      },
      { hashChain: true },
    );
    const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => sink.write(ev(i))));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect(out).toHaveLength(4);
    expect(await verifyAuditChain(out.join(''))).toMatchObject({ ok: true, count: 4 });
  });

  it('works through emitAudit, to a real file, and continues a chain after a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-iam-audit-'));
    try {
      const file = join(dir, 'audit.jsonl');
      const write = async (from: number, to: number, previousHash?: string) => {
        const stream = createWriteStream(file, { flags: 'a' });
        const sink = jsonLinesAudit(stream, previousHash === undefined ? { hashChain: true } : { hashChain: true, previousHash });
        for (let i = from; i < to; i++) emitAudit(sink, ev(i));
        await sink.flush();
        await new Promise<void>((r) => stream.end(r));
      };
      await write(0, 5);
      const first = await verifyAuditChain(readFileSync(file, 'utf8'));
      expect(first).toMatchObject({ ok: true, count: 5 });
      await write(5, 8, (first as { lastHash: string }).lastHash);
      const text = readFileSync(file, 'utf8');
      expect(await verifyAuditChain(text)).toMatchObject({ ok: true, count: 8 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects a malformed previousHash at construction', () => {
    expect(() => jsonLinesAudit(() => {}, { hashChain: true, previousHash: 'xyz' })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});

describe('verifyAuditChain: tamper detection', () => {
  it('accepts an intact log, with or without a trailing newline, CRLF tolerated; empty log is ok', async () => {
    const lines = await chainOf(4);
    expect(await verifyAuditChain(lines.join('\n') + '\n')).toMatchObject({ ok: true, count: 4 });
    expect(await verifyAuditChain(lines.join('\n'))).toMatchObject({ ok: true, count: 4 });
    expect(await verifyAuditChain(lines.join('\r\n') + '\r\n')).toMatchObject({ ok: true, count: 4 });
    expect(await verifyAuditChain('')).toEqual({ ok: true, count: 0, lastHash: AUDIT_CHAIN_GENESIS });
  });

  it('an edited line is reported at the next line', async () => {
    const lines = await chainOf(6);
    const edited = [...lines];
    edited[2] = edited[2]!.replace('"decision":"allow"', '"decision":"deny"');
    expect(await verifyAuditChain(edited)).toMatchObject({ ok: false, line: 4 });
    // even a one-character change in a value
    const tiny = [...lines];
    tiny[0] = tiny[0]!.replace('user-0', 'user-9');
    expect(await verifyAuditChain(tiny)).toMatchObject({ ok: false, line: 2 });
  });

  it('an edited prevHash is reported at that line', async () => {
    const lines = await chainOf(4);
    const edited = [...lines];
    edited[1] = edited[1]!.replace(/"prevHash":"[0-9a-f]{64}"/, `"prevHash":"${'1'.repeat(64)}"`);
    expect(await verifyAuditChain(edited)).toMatchObject({ ok: false, line: 2 });
  });

  it('a deleted line, an inserted line and swapped lines are detected', async () => {
    const lines = await chainOf(6);
    expect(await verifyAuditChain(lines.filter((_, i) => i !== 3))).toMatchObject({ ok: false, line: 4 });
    expect(await verifyAuditChain(lines.slice(1))).toMatchObject({ ok: false, line: 1 });
    const inserted = [...lines.slice(0, 2), JSON.stringify({ ...JSON.parse(lines[2]!), userId: 'forged' }), ...lines.slice(2)];
    expect(await verifyAuditChain(inserted)).toMatchObject({ ok: false, line: 4 });
    const swapped = [...lines];
    [swapped[2], swapped[3]] = [swapped[3]!, swapped[2]!];
    expect(await verifyAuditChain(swapped)).toMatchObject({ ok: false, line: 3 });
    const dup = [...lines.slice(0, 3), lines[2]!, ...lines.slice(3)];
    expect(await verifyAuditChain(dup)).toMatchObject({ ok: false, line: 4 });
  });

  it('garbage, blank lines and missing prevHash fail at that line', async () => {
    const lines = await chainOf(3);
    expect(await verifyAuditChain([lines[0]!, 'not json', lines[2]!])).toMatchObject({ ok: false, line: 2, reason: 'not valid JSON' });
    expect(await verifyAuditChain([lines[0]!, '', lines[1]!])).toMatchObject({ ok: false, line: 2, reason: 'empty line' });
    expect(await verifyAuditChain([lines[0]!, '[1,2]'])).toMatchObject({ ok: false, line: 2 });
    const noHash = JSON.stringify({ ...JSON.parse(lines[1]!), prevHash: undefined });
    expect(await verifyAuditChain([lines[0]!, noHash])).toMatchObject({ ok: false, line: 2 });
  });

  it('the last line and truncation are caught only with an anchored lastHash', async () => {
    const lines = await chainOf(5);
    const ok = await verifyAuditChain(lines);
    const anchor = (ok as { lastHash: string }).lastHash;
    const lastEdited = [...lines];
    lastEdited[4] = lastEdited[4]!.replace('user-4', 'user-x');
    expect(await verifyAuditChain(lastEdited)).toMatchObject({ ok: true }); // no anchor: undetectable
    expect(await verifyAuditChain(lastEdited, { lastHash: anchor })).toMatchObject({ ok: false, line: 5 });
    expect(await verifyAuditChain(lines.slice(0, 3), { lastHash: anchor })).toMatchObject({ ok: false, line: 3 });
    expect(await verifyAuditChain(lines, { lastHash: anchor })).toMatchObject({ ok: true, count: 5 });
  });
});

describe('verifyAuditChain: an attacker who knows the format', () => {
  /** Rebuild `prevHash` from line `from` on, as someone who can rewrite the file would. */
  function rechain(lines: string[], from: number): string[] {
    const out = [...lines];
    for (let i = Math.max(1, from); i < out.length; i++) {
      const o = JSON.parse(out[i]!) as Record<string, unknown>;
      o.prevHash = sha(out[i - 1]!);
      out[i] = JSON.stringify(o);
    }
    return out;
  }

  it('fixing the next link after an edit only moves the break to the line after it', async () => {
    const lines = await chainOf(6);
    const edited = [...lines];
    edited[2] = edited[2]!.replace('"decision":"allow"', '"decision":"deny"');
    const fixedOnce = [...edited];
    const next = JSON.parse(fixedOnce[3]!) as Record<string, unknown>;
    next.prevHash = sha(fixedOnce[2]!);
    fixedOnce[3] = JSON.stringify(next);
    expect(await verifyAuditChain(fixedOnce)).toMatchObject({ ok: false, line: 5 });
  });

  it('the same event re-serialised (other key order, spacing or escapes) is an edit', async () => {
    const lines = await chainOf(4);
    const o = JSON.parse(lines[1]!) as Record<string, unknown>;
    const variants = [
      JSON.stringify(Object.fromEntries(Object.entries(o).reverse())),
      JSON.stringify(o, null, 1).replace(/\n/g, ''),
      lines[1]!.replace('support-agent', 'support\\u002dagent'),
    ];
    for (const v of variants) {
      expect(JSON.parse(v)).toEqual(o);
      expect(await verifyAuditChain([lines[0]!, v, lines[2]!, lines[3]!])).toMatchObject({ ok: false, line: 3 });
    }
  });

  it('a forged line appended with a correct prevHash, or a chain re-hashed after an edit, is caught by the anchor', async () => {
    const lines = await chainOf(5);
    const anchor = ((await verifyAuditChain(lines)) as { lastHash: string }).lastHash;
    const forged = JSON.stringify({ ...(JSON.parse(lines[4]!) as object), userId: 'mallory', prevHash: sha(lines[4]!) });
    const appended = [...lines, forged];
    expect(await verifyAuditChain(appended)).toMatchObject({ ok: true, count: 6 }); // the chain has no key
    expect(await verifyAuditChain(appended, { lastHash: anchor })).toMatchObject({ ok: false });
    const edited = [...lines];
    edited[1] = edited[1]!.replace('user-1', 'user-x');
    const rehashed = rechain(edited, 2);
    expect(await verifyAuditChain(rehashed)).toMatchObject({ ok: true, count: 5 });
    expect(await verifyAuditChain(rehashed, { lastHash: anchor })).toMatchObject({ ok: false, line: 5 });
    // a removed line with the rest re-hashed: the anchor again
    const removed = rechain([...lines.slice(0, 2), ...lines.slice(3)], 2);
    expect(await verifyAuditChain(removed)).toMatchObject({ ok: true, count: 4 });
    expect(await verifyAuditChain(removed, { lastHash: anchor })).toMatchObject({ ok: false });
  });

  it('an anchor from another log, or a log started from another genesis, does not verify', async () => {
    const a = await chainOf(3);
    const b = await chainOf(4);
    const anchorB = ((await verifyAuditChain(b)) as { lastHash: string }).lastHash;
    expect(await verifyAuditChain(a, { lastHash: anchorB })).toMatchObject({ ok: false, line: 3 });
    // the tail of a continued log verifies only from its own genesis (the hash it continues)
    const tail = b.slice(2);
    expect(await verifyAuditChain(tail)).toMatchObject({ ok: false, line: 1 });
    expect(await verifyAuditChain(tail, { genesis: sha(b[1]!), lastHash: anchorB })).toMatchObject({ ok: true, count: 2 });
  });
});

describe('memoryAudit and redactEvent', () => {
  it('memoryAudit keeps redacted events in order; clear() empties', () => {
    const audit = memoryAudit();
    emitAudit(audit, ev(1, { path: '/x?token=abc' }));
    emitAudit(audit, { ...ev(2), secret: 'x' } as AuditEvent);
    expect(audit.events).toHaveLength(2);
    expect(audit.events[0]!.path).toBe('/x');
    expect(audit.events[1]).not.toHaveProperty('secret');
    audit.clear();
    expect(audit.events).toEqual([]);
  });

  it('redactEvent keeps every declared field', () => {
    const full: AuditEvent = {
      type: 'approval.approve',
      time: 't',
      agentId: 'a',
      userId: 'u',
      actorChain: ['x'],
      tool: 't',
      connection: 'c',
      method: 'POST',
      path: '/p',
      decision: 'allow',
      code: 'C',
      durationMs: 1,
      requestId: 'r',
      approvalId: 'apr',
      approver: 'boss',
      status: 201,
    };
    expect(redactEvent(full)).toEqual(full);
  });
});
