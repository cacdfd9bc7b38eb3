/**
 * A tool that cannot be reached (issue 14, item 14): a typed error naming the tool instead of a bare
 * `TypeError: fetch failed`, fetch's error kept as a non-enumerable cause, and an audit event that
 * says what happened. Aborts keep fetch's semantics.
 */
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToolFetch } from '../../src/outbound/index.js';
import { startUpstream, type Upstream } from './upstream.js';
import { auditLog, userContext } from './helpers.js';

const KEY = 'sk_live_UNREACHABLE_SECRET';
let closedPort: number;
let resetServer: Server;
let resetPort: number;
let hang: Upstream;

beforeAll(async () => {
  // A port that was just free: connecting is refused.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  // Accepts, reads the request, then drops the connection without answering.
  resetServer = createServer((socket) => void socket.once('data', () => socket.destroy()));
  await new Promise<void>((r) => resetServer.listen(0, '127.0.0.1', r));
  resetPort = (resetServer.address() as AddressInfo).port;
  hang = await startUpstream();
  hang.route('/slow', () => {}); // never answers
});
afterAll(async () => {
  await new Promise<void>((r) => resetServer.close(() => r()));
  await hang.close();
});

function make(origin: string, extra: { timeoutMs?: number } = {}) {
  const log = auditLog();
  const tf = createToolFetch({
    agent: { id: 'agent-1' },
    tools: [{ name: 'payments', baseUrl: origin, auth: { type: 'apiKey', key: KEY } }],
    policies: [{ agent: 'agent-1', tool: 'payments' }],
    audit: log.sink,
    ...extra,
  });
  return { tf, log };
}

async function failure(p: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await p;
  } catch (e) {
    return e as Error & Record<string, unknown>;
  }
  throw new Error('resolved');
}

describe('a tool that cannot be reached', () => {
  it('connection refused: typed, names the tool and the network code, cause kept out of sight', async () => {
    const { tf, log } = make(`http://127.0.0.1:${closedPort}`);
    const err = await failure(tf(`http://127.0.0.1:${closedPort}/v1/charges?secret=q`, { context: userContext('alice') }));
    expect(err).toMatchObject({ name: 'AgentIamError', code: 'TOOL_UNAVAILABLE', status: 502, reason: 'tool_unreachable' });
    expect(err.message).toBe('Tool payments could not be reached (ECONNREFUSED)');
    expect(err.cause).toBeInstanceOf(TypeError);
    expect(Object.keys(err)).not.toContain('cause');
    for (const text of [err.message, JSON.stringify(err), inspect(err, { depth: 5 })]) {
      expect(text).not.toContain(KEY);
      expect(text).not.toContain('secret=q');
    }
    const event = log.events.at(-1)!;
    expect(event).toMatchObject({ type: 'tool.request', tool: 'payments', decision: 'error', code: 'TOOL_UNAVAILABLE', reason: 'tool_unreachable', path: '/v1/charges' });
    expect(JSON.stringify(log.events)).not.toContain(KEY);
  });

  it('connection dropped before any answer: the same typed error', async () => {
    const { tf, log } = make(`http://127.0.0.1:${resetPort}`);
    const err = await failure(tf(`http://127.0.0.1:${resetPort}/v1/charges`, { context: userContext('alice') }));
    expect(err).toMatchObject({ code: 'TOOL_UNAVAILABLE', reason: 'tool_unreachable' });
    expect(err.message).toBe('Tool payments could not be reached (UND_ERR_SOCKET)');
    expect(log.events.at(-1)).toMatchObject({ tool: 'payments', reason: 'tool_unreachable' });
  });

  it('timeoutMs elapses: TimeoutError as fetch raises it, and the audit event says timeout', async () => {
    const { tf, log } = make(hang.origin, { timeoutMs: 150 });
    const err = await failure(tf(`${hang.origin}/slow`, { context: userContext('alice') }));
    expect(err.name).toBe('TimeoutError');
    expect(log.events.at(-1)).toMatchObject({ tool: 'payments', decision: 'error', reason: 'timeout' });
    expect(log.events.at(-1)!.code).toBeUndefined();
  });

  it("the caller's own abort: AbortError as fetch raises it, and the audit event says aborted", async () => {
    const { tf, log } = make(hang.origin);
    const controller = new AbortController();
    const pending = tf(`${hang.origin}/slow`, { context: userContext('alice'), signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    const err = await failure(pending);
    expect(err.name).toBe('AbortError');
    expect(log.events.at(-1)).toMatchObject({ tool: 'payments', decision: 'error', reason: 'aborted' });
  });
});
