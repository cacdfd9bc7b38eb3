/**
 * Configuration mistakes a new user makes, each refused at construction with `CONFIG_INVALID`
 * naming the field and the offending value (never a secret), instead of being ignored and showing
 * up later as a denial or a 400 with no hint why (issue 14, items 6, 13 and 16).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToolFetch, type ToolFetchOptions } from '../../src/outbound/index.js';
import { createTokenManager } from '../../src/tokens/token-manager.js';
import type { TokenManager } from '../../src/tokens/manager-api.js';
import { startUpstream, type Upstream } from './upstream.js';
import { codeOf, userContext } from './helpers.js';

let up: Upstream;
let tokens: TokenManager;

beforeAll(async () => {
  up = await startUpstream();
  tokens = createTokenManager({
    connections: [
      {
        id: 'github',
        authorizationEndpoint: `${up.origin}/authorize`,
        tokenEndpoint: `${up.origin}/token`,
        clientId: 'agent',
        clientSecret: 'CLIENT-SECRET-xyz',
        redirectUri: `${up.origin}/callback`,
      },
      { id: 'corp', authorizationEndpoint: `${up.origin}/authorize`, tokenEndpoint: `${up.origin}/token`, clientId: 'agent', redirectUri: `${up.origin}/callback` },
    ],
  });
});
afterAll(() => up.close());

function configError(options: unknown): { code?: string; field?: string; message: string } {
  try {
    createToolFetch(options as ToolFetchOptions);
  } catch (e) {
    return e as { code?: string; field?: string; message: string };
  }
  throw new Error('construction did not throw');
}

const base = (): ToolFetchOptions => ({
  agent: { id: 'agent-1' },
  tools: [{ name: 'stripe', baseUrl: 'https://api.stripe.com', auth: { type: 'apiKey', key: 'sk_live_SECRET' } }],
  policies: [{ agent: 'agent-1', tool: 'stripe' }],
});

describe('unknown keys are refused, with the key named (item 6)', () => {
  const cases: [string, unknown, string][] = [
    ['top-level typo with a missing option beside it', { agent: { id: 'agent-1' }, tools: [], polices: [] }, 'polices'],
    ['top-level unknown option', { ...base(), timeout: 5000 }, 'timeout'],
    ['agent key', { ...base(), agent: { id: 'agent-1', name: 'x' } }, 'agent.name'],
    ['tool key', { ...base(), tools: [{ name: 'stripe', baseUrl: 'https://api.stripe.com', perUsr: true }] }, 'tools.0.perUsr'],
    ['auth key', { ...base(), tools: [{ name: 'stripe', baseUrl: 'https://api.stripe.com', auth: { type: 'apiKey', key: 'sk_live_SECRET', headr: 'x-api-key' } }] }, 'tools.0.auth.headr'],
    ['none auth with a key', { ...base(), tools: [{ name: 'stripe', baseUrl: 'https://api.stripe.com', auth: { type: 'none', key: 'sk_live_SECRET' } }] }, 'tools.0.auth.key'],
    ['capability key', { ...base(), tools: [{ name: 'stripe', baseUrl: 'https://api.stripe.com', capabilities: [{ method: 'GET', path: '/v1/x', effect: 'deny' }] }] }, 'tools.0.capabilities.0.effect'],
  ];
  for (const [label, options, field] of cases) {
    it(label, () => {
      const err = configError(options);
      expect(err).toMatchObject({ code: 'CONFIG_INVALID', field });
      expect(err.message).toContain('is not a known option');
      expect(err.message).not.toContain('sk_live_SECRET');
    });
  }

  it('a typo is named as the typo, with the option it probably meant', () => {
    const err = configError({ agent: { id: 'agent-1' }, tools: [], polices: [] });
    expect(err.message).toBe('Invalid option polices: is not a known option (did you mean policies?)');
  });

  it('AWS SDK credential objects with extra fields are still accepted (only the three keys are used)', () => {
    expect(() =>
      createToolFetch({
        ...base(),
        tools: [
          {
            name: 's3',
            baseUrl: 'https://s3.eu-west-1.amazonaws.com',
            auth: { type: 'awsSigV4', region: 'eu-west-1', service: 's3', credentials: { accessKeyId: 'AKIA', secretAccessKey: 's', expiration: new Date(), accountId: '1' } as never },
          },
        ],
        policies: [{ agent: 'agent-1', tool: 's3' }],
      }),
    ).not.toThrow();
  });
});

describe('perUser: false on a tool whose token is the user’s (item 6)', () => {
  for (const auth of [{ type: 'oauth2', connection: 'github' }, { type: 'tokenExchange', connection: 'corp', scopes: ['read'] }] as const) {
    it(`${auth.type}: refused at construction`, () => {
      const err = configError({ ...base(), tools: [{ name: 'gh', baseUrl: 'https://api.github.com', auth, perUser: false }], policies: [], tokens });
      expect(err).toMatchObject({ code: 'CONFIG_INVALID', field: 'tools.0.perUser' });
      expect(err.message).toContain(auth.type);
    });
  }
  it('perUser: false stays fine where it means something (apiKey, clientCredentials)', () => {
    expect(() =>
      createToolFetch({
        ...base(),
        tools: [
          { name: 'stripe', baseUrl: 'https://api.stripe.com', auth: { type: 'apiKey', key: 'k' }, perUser: false },
          { name: 'reports', baseUrl: 'https://reports.example', auth: { type: 'clientCredentials', connection: 'corp' }, perUser: false },
        ],
        tokens,
      }),
    ).not.toThrow();
  });
});

describe('a policy naming a tool that is not registered (item 13)', () => {
  it('a typo in an allow rule is refused, naming the rule, the value and the registered tools', () => {
    const err = configError({ ...base(), policies: [{ agent: 'agent-1', tool: 'stripe' }, { agent: 'agent-1', tool: 'stirpe', effect: 'approval' }] });
    expect(err).toMatchObject({ code: 'CONFIG_INVALID', field: 'policies.1.tool' });
    expect(err.message).toContain('"stirpe"');
    expect(err.message).toContain('"stripe"');
    expect(err.message).not.toContain('sk_live_SECRET');
  });

  it('a typo in a deny rule (a denial that would never happen) is refused, also for agent "*"', () => {
    const err = configError({ ...base(), policies: [{ agent: 'agent-1', tool: 'stripe' }, { agent: '*', tool: 'Stripe', groups: ['contractors'], effect: 'deny' }] });
    expect(err).toMatchObject({ code: 'CONFIG_INVALID', field: 'policies.1.tool' });
  });

  it('"*" tools and rules for other agents (a shared rule list) are accepted', () => {
    expect(() =>
      createToolFetch({ ...base(), policies: [{ agent: 'agent-1', tool: '*' }, { agent: 'other-agent', tool: 'jira' }] }),
    ).not.toThrow();
  });
});

describe('a tool naming a connection the token manager does not have (item 16)', () => {
  for (const auth of [
    { type: 'oauth2', connection: 'gihub' },
    { type: 'clientCredentials', connection: 'crop' },
    { type: 'tokenExchange', connection: 'crop', scopes: ['read'] },
  ] as const) {
    it(`${auth.type}: refused at construction, naming the tool and the id`, () => {
      const err = configError({ ...base(), tools: [base().tools[0], { name: 'gh', baseUrl: up.origin, auth }], tokens });
      expect(err).toMatchObject({ code: 'CONFIG_INVALID', field: 'tools.1.auth.connection' });
      expect(err.message).toContain('tool gh');
      expect(err.message).toContain(`"${auth.connection}"`);
      expect(err.message).toContain('"github", "corp"');
      expect(err.message).not.toContain('CLIENT-SECRET');
    });
  }

  it('a known connection constructs, and the call goes as far as consent (not a 400)', async () => {
    const tf = createToolFetch({
      agent: { id: 'agent-1' },
      tools: [{ name: 'gh', baseUrl: up.origin, auth: { type: 'oauth2', connection: 'github' } }],
      policies: [{ agent: 'agent-1', tool: 'gh' }],
      tokens,
    });
    expect(await codeOf(tf(`${up.origin}/user`, { context: userContext('alice') }))).toBe('CONSENT_REQUIRED');
    expect(up.received).toHaveLength(0);
  });
});
