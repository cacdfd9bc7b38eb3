/**
 * Property: toolFetch's capability decision agrees with a simple reference matcher on safe paths
 * (fast-check). Uses a fetch that answers at once, so no network is involved; the point here is the
 * decision, not the wire (the wire is covered by the recorded-upstream tests).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createToolFetch } from '../../src/outbound/index.js';
import { codeOf } from './helpers.js';

type Cap = { method: string; path: string };

function refMatch(caps: Cap[], method: string, path: string): boolean {
  const s = path.split('/').slice(1);
  return caps.some((c) => {
    if (c.method !== '*' && c.method.toUpperCase() !== method.toUpperCase()) return false;
    const p = c.path.split('/').slice(1);
    const wildcard = p[p.length - 1] === '*';
    const fixed = wildcard ? p.slice(0, -1) : p;
    if (wildcard ? s.length <= fixed.length : s.length !== fixed.length) return false;
    return fixed.every((seg, i) => (seg.startsWith(':') ? (s[i] ?? '') !== '' : seg === s[i]));
  });
}

describe('property: capability decisions in toolFetch', () => {
  const seg = fc.constantFrom('a', 'b', 'v1', 'items');
  const patternSeg = fc.constantFrom('a', 'b', 'v1', 'items', ':id');
  const cap = fc.record({
    method: fc.constantFrom('GET', 'post', '*', 'DELETE'),
    path: fc
      .tuple(fc.array(patternSeg, { minLength: 1, maxLength: 3 }), fc.boolean())
      .map(([segs, star]) => `/${segs.join('/')}${star ? '/*' : ''}`),
  });
  const reqPath = fc.tuple(fc.array(seg, { minLength: 1, maxLength: 4 }), fc.boolean()).map(([s, slash]) => `/${s.join('/')}${slash ? '/' : ''}`);

  it('agrees with the reference matcher', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(cap, { minLength: 1, maxLength: 6 }), fc.constantFrom('GET', 'POST', 'DELETE', 'PUT'), reqPath, async (caps, method, path) => {
        let sent = 0;
        const tf = createToolFetch({
          agent: { id: 'a' },
          tools: [{ name: 't', baseUrl: 'https://api.example.com', capabilities: caps }],
          policies: [{ agent: 'a', tool: 't' }],
          fetch: async () => {
            sent++;
            return new Response('ok');
          },
        });
        const body = method === 'GET' ? {} : { body: 'x' };
        const code = await codeOf(tf(`https://api.example.com${path}`, { method, ...body }));
        const expected = refMatch(caps, method, path);
        expect(code, `${method} ${path} vs ${JSON.stringify(caps)}`).toBe(expected ? 'RESOLVED' : 'CAPABILITY_DENIED');
        expect(sent).toBe(expected ? 1 : 0);
      }),
      { numRuns: 400 },
    );
  });
});
