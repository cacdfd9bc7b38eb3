import type { AgentContext } from '../../src/context.js';
import type { AuditEvent } from '../../src/audit/events.js';
import type { ToolFetchApprovals } from '../../src/outbound/index.js';

export function userContext(userId: string | undefined, extra: Partial<AgentContext> = {}): AgentContext {
  return {
    userId,
    subject: userId,
    issuer: 'https://idp.test',
    scopes: [],
    claims: {},
    actorChain: [],
    requestId: 'req-1',
    authenticated: userId !== undefined,
    ...extra,
  };
}

export function auditLog(): { events: AuditEvent[]; sink: (e: AuditEvent) => void } {
  const events: AuditEvent[] = [];
  return { events, sink: (e) => void events.push(e) };
}

/** Throws the code of a rejected promise, for `expect(...).rejects.toMatchObject({ code })`. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'RESOLVED';
  } catch (e) {
    return (e as { code?: string }).code ?? `THROWN:${(e as Error).name}`;
  }
}

/**
 * A minimal real approvals service (the SDK's createApprovals is tested on its own): requests are
 * keyed by every bound field; `approve` makes the next identical request pass once.
 */
export function simpleApprovals(): ToolFetchApprovals & {
  checks: Parameters<ToolFetchApprovals['check']>[0][];
  approve(id: string): void;
  deny(id: string): void;
  failing: boolean;
} {
  const byKey = new Map<string, { id: string; status: 'pending' | 'approved' | 'denied' }>();
  const byId = new Map<string, { id: string; status: 'pending' | 'approved' | 'denied' }>();
  const checks: Parameters<ToolFetchApprovals['check']>[0][] = [];
  let n = 0;
  const self = {
    checks,
    failing: false,
    async check(req: Parameters<ToolFetchApprovals['check']>[0]) {
      if (self.failing) throw new Error('store down: secret-connection-string');
      checks.push(req);
      const key = JSON.stringify([req.agentId, req.userId, req.tool, req.method, req.path, req.query, req.bodySha256]);
      let entry = byKey.get(key);
      if (!entry) {
        entry = { id: `apr_${++n}`, status: 'pending' };
        byKey.set(key, entry);
        byId.set(entry.id, entry);
      }
      if (entry.status === 'approved') {
        byKey.delete(key); // single use
        return { status: 'approved' as const, id: entry.id };
      }
      if (entry.status === 'denied') return { status: 'denied' as const, id: entry.id };
      return { status: 'pending' as const, id: entry.id, summary: { agentId: req.agentId, ...(req.userId === undefined ? {} : { userId: req.userId }), tool: req.tool, method: req.method, path: req.path } };
    },
    approve(id: string) {
      const e = byId.get(id);
      if (e) e.status = 'approved';
    },
    deny(id: string) {
      const e = byId.get(id);
      if (e) e.status = 'denied';
    },
  };
  return self;
}
