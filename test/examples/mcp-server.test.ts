/**
 * Runs examples/mcp-server as a user would: `npx tsx examples/mcp-server/index.ts` in a child process,
 * importing the package by name (`agent-iam`, `agent-iam/express`, `agent-iam/mcp`,
 * `agent-iam/testing`), which tsconfig `paths` map to src/ for tsx.
 */
import { describe, expect, it } from 'vitest';
import { runExample } from './run-example.js';

describe('examples/mcp-server', () => {
  it('protected MCP server: the SDK client is refused, discovers the metadata, authorizes, and whoami sees the verified user; exits 0', async () => {
    const { code, out, err } = await runExample('examples/mcp-server/index.ts', 55_000);
    expect(code, `${err}\n${out}`).toBe(0);

    const server = /^MCP server (http:\/\/127\.0\.0\.1:\d+)\/mcp, authorization server (http:\/\/127\.0\.0\.1:\d+)$/m.exec(out);
    expect(server, out).not.toBeNull();
    const [, origin, issuer] = server!;

    // 1. No token: 401 whose challenge names the RFC 9728 document, which the SDK then fetches,
    //    and from there the authorization server, where it registers.
    expect(out).toContain(`client POST ${origin}/mcp → 401`);
    expect(out).toContain(`WWW-Authenticate: Bearer scope="mcp:tools", resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"`);
    expect(out).toContain(`client GET ${origin}/.well-known/oauth-protected-resource/mcp → 200`);
    const document = /^\s+(\{"resource".*)$/m.exec(out)?.[1];
    expect(JSON.parse(document ?? '{}')).toEqual({
      resource: `${origin}/mcp`,
      authorization_servers: [issuer],
      bearer_methods_supported: ['header'],
      scopes_supported: ['mcp:tools'],
      resource_name: 'Notes MCP server',
    });
    expect(out).toContain(`client POST ${issuer}/reg → 201`);
    expect(out).toContain(`→ refused; the user must authorize at ${issuer}/auth (resource=${origin}/mcp, code_challenge_method=S256)`);

    // 2–3. Consent, code redeemed, and the tool sees the verified user.
    expect(out).toContain(`client POST ${issuer}/token → 200`);
    expect(out).toContain('tools: whoami');
    expect(out).toContain(`whoami → {"userId":"alice@example.com","email":"alice@example.com","scopes":["mcp:tools"],"issuer":"${issuer}"}`);

    // 4. Refusals.
    expect(out).toContain('token for another resource → 401 TOKEN_AUDIENCE_MISMATCH');
    expect(out).toContain('token without mcp:tools → 403 INSUFFICIENT_SCOPE');
    expect(out).toContain(`WWW-Authenticate: Bearer error="invalid_token", resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"`);
    expect(out).toContain(`WWW-Authenticate: Bearer error="insufficient_scope", scope="mcp:tools", resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"`);

    // Nothing secret is printed: no JWT, no authorization code or PKCE verifier in a URL.
    expect(out + err).not.toMatch(/eyJ[\w-]+\.[\w-]+\./);
    expect(out).not.toMatch(/[?&](code|state|code_challenge)=/);
    expect(out).not.toContain('UNEXPECTED');
    expect(out.trim().split('\n').at(-1)).toBe('mcp-server: OK');
  }, 70_000);
});
