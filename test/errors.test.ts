import { describe, expect, it } from 'vitest';
import { AgentIamError, bearerChallenge, isAgentIamError, renderError, ERROR_STATUS } from '../src/errors.js';

describe('AgentIamError', () => {
  it('carries code, status and safe fields only', () => {
    const cause = new Error('secret-code-abc');
    const e = new AgentIamError('OAUTH_ERROR', 'The server refused', { oauthError: 'invalid_grant', cause });
    expect(e).toMatchObject({ code: 'OAUTH_ERROR', status: 502, oauthError: 'invalid_grant' });
    expect(isAgentIamError(e)).toBe(true);
    expect(Object.keys(e)).not.toContain('cause');
    expect(JSON.stringify(e)).not.toContain('secret-code-abc');
  });

  it('maps every code to a status', () => {
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      expect(new AgentIamError(code as keyof typeof ERROR_STATUS, 'x').status).toBe(status);
    }
  });

  it('renders RFC 6750 challenges and never echoes unknown errors', () => {
    expect(bearerChallenge({ error: 'insufficient_scope', scope: ['a', 'b'], resourceMetadata: 'https://x/.well-known/oauth-protected-resource' }))
      .toBe('Bearer error="insufficient_scope", scope="a b", resource_metadata="https://x/.well-known/oauth-protected-resource"');
    expect(bearerChallenge({ errorDescription: 'a"b\r\nc' })).toBe('Bearer error_description="a\\"bc"');
    const r = renderError(new Error('leak me'));
    expect(r.status).toBe(500);
    expect(JSON.stringify(r)).not.toContain('leak me');
  });
});

describe('KnownAgentIamError', () => {
  it('narrows each code to the fields it always carries (checked by the type-check too)', () => {
    const errors: unknown[] = [
      new AgentIamError('APPROVAL_REQUIRED', 'needs approval', { approvalId: 'ap_1', approval: { agentId: 'a', tool: 't', method: 'POST', path: '/x' } }),
      new AgentIamError('OAUTH_ERROR', 'refused', { oauthError: 'invalid_grant' }),
      new AgentIamError('CONFIG_INVALID', 'bad', { field: 'tools.0.name' }),
    ];
    const seen: string[] = [];
    for (const e of errors) {
      if (!isAgentIamError(e)) continue;
      // Each assignment below is a type error unless narrowing gives the field a non-optional type.
      if (e.code === 'APPROVAL_REQUIRED') {
        const id: string = e.approvalId;
        const tool: string = e.approval.tool;
        seen.push(id, tool);
      } else if (e.code === 'OAUTH_ERROR') {
        const code: string = e.oauthError;
        seen.push(code);
      } else if (e.code === 'CONFIG_INVALID') {
        const field: string = e.field;
        seen.push(field);
      }
    }
    expect(seen).toEqual(['ap_1', 't', 'invalid_grant', 'tools.0.name']);
  });
});
