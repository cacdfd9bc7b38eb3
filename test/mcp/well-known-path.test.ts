/**
 * Property: for any resource URL, the metadata URL we publish is exactly the one that both
 * oauth4webapi and the MCP SDK client will request (RFC 9728 §3.1).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as oauth from 'oauth4webapi';
import { discoverOAuthProtectedResourceMetadata } from '@modelcontextprotocol/sdk/client/auth.js';
import { protectedResourceMetadata } from '../../src/mcp/index.js';

const segment = fc.stringMatching(/^[A-Za-z0-9._~-]{1,12}$/).filter((s) => s !== '.' && s !== '..');
const resourceArb = fc
  .record({
    host: fc.constantFrom('mcp.example.com', 'api.example.org:8443', '127.0.0.1:3000', 'localhost:8080'),
    segments: fc.array(segment, { maxLength: 4 }),
    trailingSlash: fc.boolean(),
  })
  .map(({ host, segments, trailingSlash }) => {
    const scheme = host.startsWith('127.') || host.startsWith('localhost') ? 'http' : 'https';
    const path = segments.length === 0 ? '' : `/${segments.join('/')}${trailingSlash ? '/' : ''}`;
    return `${scheme}://${host}${path}`;
  });

/** The URL a client requests, captured without any network. */
async function requested(discover: (fetchFn: (url: string | URL) => Promise<Response>) => Promise<unknown>): Promise<string> {
  let seen = '';
  await discover(async (url) => {
    seen = String(url);
    return new Response('{}', { status: 404 });
  }).catch(() => undefined);
  return seen;
}

describe('RFC 9728 metadata location', () => {
  it('matches what oauth4webapi requests, for any resource', async () => {
    await fc.assert(
      fc.asyncProperty(resourceArb, async (resource) => {
        const meta = protectedResourceMetadata({ resource, authorizationServers: ['https://idp.example.com'] });
        const url = await requested((f) =>
          oauth.resourceDiscoveryRequest(new URL(resource), { [oauth.customFetch]: (u: string) => f(u), [oauth.allowInsecureRequests]: true }),
        );
        expect(url).toBe(meta.url);
        expect(new URL(meta.url).pathname).toBe(meta.path);
      }),
      { numRuns: 150 },
    );
  });

  // The MCP SDK drops a trailing slash before inserting the well-known path; RFC 9728's text and
  // oauth4webapi keep it. Resources without a trailing slash are read the same way by both.
  it('matches the first location the MCP SDK client tries, for resources without a trailing slash', async () => {
    await fc.assert(
      fc.asyncProperty(resourceArb.filter((r) => !r.endsWith('/')), async (resource) => {
        const meta = protectedResourceMetadata({ resource, authorizationServers: ['https://idp.example.com'] });
        const seen: string[] = [];
        await discoverOAuthProtectedResourceMetadata(resource, undefined, async (u) => {
          seen.push(String(u));
          return new Response('{}', { status: 404 });
        }).catch(() => undefined);
        expect(seen[0]).toBe(meta.url);
      }),
      { numRuns: 150 },
    );
  });
});
