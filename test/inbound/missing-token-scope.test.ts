import { describe, expect, it } from 'vitest';
import { createVerifier } from '../../src/inbound/verifier.js';

describe('a request without a token on a route that needs scopes', () => {
  const verifier = createVerifier({
    providers: [{ issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/jwks', audiences: ['api://test'] }],
    resourceMetadataUrl: 'https://agent.example.com/.well-known/oauth-protected-resource/mcp',
  });

  it('gets TOKEN_MISSING whose challenge names the scopes (RFC 6750 §3, MCP authorization) and no error', async () => {
    const err = await verifier.verify({ headers: {} }, { requiredScopes: ['mcp:tools', 'notes:read'] }).then(
      () => undefined,
      (e: unknown) => e as { code: string; status: number; wwwAuthenticate: string },
    );
    expect(err).toMatchObject({ code: 'TOKEN_MISSING', status: 401 });
    expect(err?.wwwAuthenticate).toBe('Bearer scope="mcp:tools notes:read", resource_metadata="https://agent.example.com/.well-known/oauth-protected-resource/mcp"');
  });

  it('without required scopes the challenge stays bare (plus resource_metadata)', async () => {
    await expect(verifier.verify({ headers: {} })).rejects.toMatchObject({
      code: 'TOKEN_MISSING',
      wwwAuthenticate: 'Bearer resource_metadata="https://agent.example.com/.well-known/oauth-protected-resource/mcp"',
    });
  });
});
