// Moved from test/policy/approvals-index.test.ts (the unit project has no timed assertions; it keeps
// the deterministic half, the bytes written per creation): creating an approval takes no longer with
// 2,000 pending approvals than with none.
import { describe, expect, it } from 'vitest';
import { createApprovals, type ApprovalRequestInput } from '../../src/policy/approvals.js';
import { createKeyValueStore, type Store } from '../../src/stores/store.js';

const EMPTY_SHA = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const req = (path: string): ApprovalRequestInput => ({
  agentId: 'support-agent',
  userId: 'alice',
  tool: 'stripe',
  method: 'POST',
  path,
  query: '',
  bodySha256: EMPTY_SHA,
});

/** The exact in-memory store, recording the size of every value it is given to write. */
function recordingStore(): Store & { writes: number[] } {
  const inner = createKeyValueStore();
  const out = { writes: [] as number[] } as Store & { writes: number[] };
  const ops = ['get', 'set', 'delete', 'getVersioned', 'setIfAbsent', 'compareAndSet', 'deleteIfOwner', 'consume', 'indexAdd', 'indexMembers', 'indexRemove'] as const;
  for (const op of ops) {
    (out as unknown as Record<string, unknown>)[op] = async (...args: unknown[]) => {
      if (op === 'set' || op === 'setIfAbsent') out.writes.push(JSON.stringify(args[1]).length);
      if (op === 'compareAndSet') out.writes.push(JSON.stringify(args[2]).length);
      if (op === 'indexAdd') out.writes.push(String(args[1]).length);
      return (inner[op] as (...a: unknown[]) => Promise<unknown>)(...args);
    };
  }
  (out as { atomic: boolean }).atomic = true;
  return out;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

describe('approvals list index: creation cost does not grow with the number of approvals', () => {
  it('creating 2,000 approvals: bytes written per creation are bounded and the last 200 cost < 3x the first 200', async () => {
    const store = recordingStore();
    const approvals = createApprovals({ store });
    // warm-up: JIT
    for (let i = 0; i < 20; i++) await approvals.check(req(`/warm/${i}`));

    const times: number[] = [];
    const bytes: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const before = store.writes.length;
      const t = performance.now();
      const c = await approvals.check(req(`/p/${i}`));
      times.push(performance.now() - t);
      expect(c.status).toBe('pending');
      bytes.push(store.writes.slice(before).reduce((a, b) => a + b, 0));
    }
    // Deterministic: what a creation writes never depends on how many approvals exist.
    const maxFirst = Math.max(...bytes.slice(0, 200));
    const maxLast = Math.max(...bytes.slice(-200));
    expect(maxLast).toBeLessThanOrEqual(maxFirst * 1.2);
    expect(Math.max(...bytes)).toBeLessThan(8_000);
    // Timing, with a generous factor (medians, so a GC pause or a busy CPU does not decide it).
    const first = median(times.slice(0, 200));
    const last = median(times.slice(-200));
    expect(last).toBeLessThan(first * 3);

    const listed = await approvals.list();
    expect(listed).toHaveLength(2020);
    expect(listed.map((r) => r.summary.path).slice(-2)).toEqual(['/p/1998', '/p/1999']);
  });
});
