/**
 * Notifications of new approvals: a hook, and a webhook whose body is signed with HMAC-SHA256
 * (`Agent-Iam-Signature: t=<unix seconds>,v1=<hex>` over `<t>.<body>`). The payload carries the
 * approval's id and the inbox link, never the request's query, body or any credential.
 *
 * @module
 */
import { nowMs } from '../lib/clock.js';
import { toHex } from '../lib/encoding.js';

/** What the hook and the webhook receive when a request starts waiting for approval. */
export interface ApprovalNotification {
  type: 'approval.requested';
  approvalId: string;
  /** `{inboxUrl}/{approvalId}`, when `inboxUrl` is configured: where an approver decides it. */
  inboxUrl?: string;
  agentId: string;
  tool: string;
  /** epoch ms */
  createdAt: number;
  /** epoch ms: when the pending approval lapses. */
  expiresAt: number;
}

/** The header carrying the webhook signature. */
export const WEBHOOK_SIGNATURE_HEADER = 'agent-iam-signature';

const encoder = new TextEncoder();

async function hmacHex(secret: string, data: string): Promise<string> {
  const key = await crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return toHex(new Uint8Array(await crypto.subtle.sign('HMAC', key, encoder.encode(data))));
}

/** @internal The signature header value for `body` at `time` (epoch seconds). */
export async function signWebhook(secret: string, body: string, time: number): Promise<string> {
  return `t=${time},v1=${await hmacHex(secret, `${time}.${body}`)}`;
}

/**
 * Check a webhook from agent-iam: the `Agent-Iam-Signature` header must carry an HMAC-SHA256 of
 * `<t>.<raw body>` under the shared secret, with `t` within `toleranceSeconds` (default 300) of
 * now. Verify the raw body before parsing it.
 *
 * @example
 * ```ts
 * app.post('/hooks/agent-iam', express.text({ type: '*\/*' }), async (req, res) => {
 *   if (!(await verifyWebhookSignature({ body: req.body, header: req.get('agent-iam-signature'), secret: process.env.HOOK_SECRET! }))) return res.sendStatus(401);
 *   const n = JSON.parse(req.body) as ApprovalNotification; // n.approvalId, n.inboxUrl
 *   res.sendStatus(204);
 * });
 * ```
 */
export async function verifyWebhookSignature(o: { body: string; header: string | null | undefined; secret: string; toleranceSeconds?: number; now?: number }): Promise<boolean> {
  if (typeof o.header !== 'string' || typeof o.body !== 'string') return false;
  const parts = new Map(o.header.split(',').map((p) => [p.slice(0, p.indexOf('=')).trim(), p.slice(p.indexOf('=') + 1).trim()] as const));
  const t = Number(parts.get('t'));
  const v1 = parts.get('v1');
  if (!Number.isInteger(t) || v1 === undefined || !/^[0-9a-f]{64}$/.test(v1)) return false;
  const now = Math.floor((o.now ?? nowMs()) / 1000);
  if (Math.abs(now - t) > (o.toleranceSeconds ?? 300)) return false;
  const expected = await hmacHex(o.secret, `${t}.${o.body}`);
  let diff = 0;
  for (let i = 0; i < 64; i++) diff |= expected.charCodeAt(i) ^ v1.charCodeAt(i);
  return diff === 0;
}
