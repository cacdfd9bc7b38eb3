/** parseOptions: an unknown key is named as such, before the required key it was probably meant to be. */
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { parseOptions } from '../../src/lib/options.js';
import { createVerifier } from '../../src/inbound/index.js';

function failure(build: () => unknown): { code?: string; field?: string; message?: string } {
  try {
    build();
  } catch (e) {
    return e as never;
  }
  throw new Error('expected CONFIG_INVALID');
}

const schema = z.strictObject({
  policies: z.array(z.string()),
  nested: z.strictObject({ ttlSeconds: z.number(), label: z.string().optional() }).optional(),
});

describe('parseOptions', () => {
  it('a misspelt required key is reported as unknown, with the key it may have meant', () => {
    const e = failure(() => parseOptions(schema, { polices: [] }));
    expect(e).toMatchObject({ code: 'CONFIG_INVALID', field: 'polices' });
    expect(e.message).toContain('not a known option');
    expect(e.message).toContain('did you mean policies?');
  });

  it('nested unknown keys carry their full path (and the prefix); several are all listed', () => {
    const e = failure(() => parseOptions(schema, { policies: [], nested: { ttlSecond: 1, lable: 'x' } }, 'tools'));
    expect(e.field).toBe('tools.nested.ttlSecond');
    expect(e.message).toContain('did you mean ttlSeconds?');
    expect(e.message).toContain('also unknown: lable');
  });

  it('an unknown optional key has no guess; other errors are unchanged', () => {
    expect(failure(() => parseOptions(schema, { policies: [], nested: { ttlSeconds: 1, labels: 'x' } }))).toMatchObject({ field: 'nested.labels' });
    expect(failure(() => parseOptions(schema, { policies: 'x' }))).toMatchObject({ field: 'policies' });
    expect(failure(() => parseOptions(schema, null))).toMatchObject({ field: '(root)' });
  });

  it('the message never carries the value', () => {
    const e = failure(() => parseOptions(schema, { policies: [], clientSecret: 'hunter2-SECRET' }));
    expect(e.field).toBe('clientSecret');
    expect(JSON.stringify(e) + e.message).not.toContain('hunter2-SECRET');
  });
});

describe('createVerifier: unknown option keys', () => {
  const provider = { issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/jwks', audiences: ['api'] };

  it('a misspelt top-level key is named, not reported as a missing providers', () => {
    const e = failure(() => createVerifier({ provders: [provider] } as never));
    expect(e).toMatchObject({ code: 'CONFIG_INVALID', field: 'provders' });
    expect(e.message).toContain('did you mean providers?');
  });

  it.each([
    [{ providers: [provider], cachesize: 10 }, 'cachesize'],
    [{ providers: [{ ...provider, audience: ['typo'] }] }, 'providers.0.audience'],
    [{ providers: [{ ...provider, allowedDomain: ['company.com'] }] }, 'providers.0.allowedDomain'],
    [{ providers: [{ ...provider, clocktolerance: 60 }] }, 'providers.0.clocktolerance'],
  ])('unknown key is CONFIG_INVALID naming it (%#)', (options, field) => {
    expect(failure(() => createVerifier(options as never))).toMatchObject({ code: 'CONFIG_INVALID', field });
  });
});
