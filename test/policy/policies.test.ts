import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createPolicyEngine, type PolicyEffect, type PolicyInput, type PolicyRule } from '../../src/policy/policies.js';

const input = (over: Partial<PolicyInput> = {}): PolicyInput => ({
  agentId: 'support-agent',
  tool: 'stripe',
  userId: 'u1',
  groups: [],
  actorChain: [],
  method: 'GET',
  path: '/v1/charges',
  ...over,
});

describe('createPolicyEngine: matching and precedence', () => {
  it('no rule → deny/no_rule; exact and * agent/tool', () => {
    const e = createPolicyEngine([
      { agent: 'support-agent', tool: 'stripe' },
      { agent: '*', tool: 'github' },
      { agent: 'ops-agent', tool: '*' },
    ]);
    expect(e.evaluate(input())).toMatchObject({ effect: 'allow', reason: 'matched', rule: { agent: 'support-agent', tool: 'stripe', effect: 'allow' } });
    expect(e.evaluate(input({ tool: 'github', agentId: 'any' }))).toMatchObject({ effect: 'allow' });
    expect(e.evaluate(input({ agentId: 'ops-agent', tool: 'whatever' }))).toMatchObject({ effect: 'allow' });
    expect(e.evaluate(input({ tool: 'slack' }))).toEqual({ effect: 'deny', reason: 'no_rule' });
    expect(e.evaluate(input({ agentId: 'other' }))).toEqual({ effect: 'deny', reason: 'no_rule' });
    expect(createPolicyEngine([]).evaluate(input())).toEqual({ effect: 'deny', reason: 'no_rule' });
  });

  it('deny beats approval beats allow, whatever the order or wildcard', () => {
    const allow: PolicyRule = { agent: 'support-agent', tool: 'stripe' };
    const approval: PolicyRule = { agent: '*', tool: 'stripe', effect: 'approval', capabilities: [{ method: 'POST', path: '/v1/refunds' }] };
    const deny: PolicyRule = { agent: 'support-agent', tool: '*', effect: 'deny', groups: ['suspended'] };
    for (const rules of [[allow, approval, deny], [deny, approval, allow], [approval, deny, allow]]) {
      const e = createPolicyEngine(rules);
      expect(e.evaluate(input()).effect).toBe('allow');
      expect(e.evaluate(input({ method: 'post', path: '/v1/refunds' })).effect).toBe('approval');
      expect(e.evaluate(input({ method: 'POST', path: '/v1/refunds', groups: ['suspended'] })).effect).toBe('deny');
      expect(e.evaluate(input({ groups: ['suspended'] })).rule?.effect).toBe('deny');
    }
  });

  it('ties go to the first declared rule', () => {
    const e = createPolicyEngine([
      { agent: '*', tool: '*', users: ['u1'] },
      { agent: 'support-agent', tool: 'stripe' },
    ]);
    expect(e.evaluate(input()).rule).toMatchObject({ agent: '*', tool: '*' });
  });

  it('users, groups, domains (case-insensitive, exact), capabilities', () => {
    const e = createPolicyEngine([
      { agent: 'a', tool: 't1', users: ['alice', 'bob'] },
      { agent: 'a', tool: 't2', groups: ['eng', 'ops'] },
      { agent: 'a', tool: 't3', domains: ['Example.com'] },
      { agent: 'a', tool: 't4', capabilities: [{ method: 'GET', path: '/v1/items/:id' }] },
    ]);
    const i = (o: Partial<PolicyInput>) => input({ agentId: 'a', userId: undefined, ...o });
    expect(e.evaluate(i({ tool: 't1', userId: 'alice' })).effect).toBe('allow');
    expect(e.evaluate(i({ tool: 't1', userId: 'Alice' })).effect).toBe('deny');
    expect(e.evaluate(i({ tool: 't1' })).effect).toBe('deny');
    expect(e.evaluate(i({ tool: 't2', groups: ['x', 'ops'] })).effect).toBe('allow');
    expect(e.evaluate(i({ tool: 't2', groups: ['x'] })).effect).toBe('deny');
    expect(e.evaluate(i({ tool: 't3', domain: 'EXAMPLE.COM' })).effect).toBe('allow');
    expect(e.evaluate(i({ tool: 't3', domain: 'evil.example.com' })).effect).toBe('deny');
    expect(e.evaluate(i({ tool: 't3', domain: 'example.com.evil.io' })).effect).toBe('deny');
    expect(e.evaluate(i({ tool: 't3' })).effect).toBe('deny');
    expect(e.evaluate(i({ tool: 't4', path: '/v1/items/9' })).effect).toBe('allow');
    expect(e.evaluate(i({ tool: 't4', path: '/v1/items/9', method: 'DELETE' })).effect).toBe('deny');
    expect(e.evaluate(i({ tool: 't4', path: '/v1/items/../admin' })).effect).toBe('deny');
  });

  it('actors: allow needs a non-empty chain of listed actors; deny/approval trigger on any listed actor', () => {
    const e = createPolicyEngine([
      { agent: 'a', tool: 't', actors: ['orchestrator', 'planner'] },
      { agent: 'a', tool: 'u' },
      { agent: 'a', tool: 'u', actors: ['rogue'], effect: 'deny' },
      { agent: 'a', tool: 'u', actors: ['intern-bot'], effect: 'approval' },
    ]);
    const i = (o: Partial<PolicyInput>) => input({ agentId: 'a', ...o });
    expect(e.evaluate(i({ tool: 't', actorChain: ['orchestrator'] })).effect).toBe('allow');
    expect(e.evaluate(i({ tool: 't', actorChain: ['planner', 'orchestrator'] })).effect).toBe('allow');
    expect(e.evaluate(i({ tool: 't', actorChain: ['planner', 'stranger'] })).effect).toBe('deny');
    expect(e.evaluate(i({ tool: 't', actorChain: [] })).effect).toBe('deny');
    expect(e.evaluate(i({ tool: 'u', actorChain: [] })).effect).toBe('allow');
    expect(e.evaluate(i({ tool: 'u', actorChain: ['x', 'rogue', 'y'] })).effect).toBe('deny');
    expect(e.evaluate(i({ tool: 'u', actorChain: ['intern-bot', 'stranger'] })).effect).toBe('approval');
    expect(e.evaluate(i({ tool: 'u', actorChain: ['intern-bot', 'rogue'] })).effect).toBe('deny');
  });

  it('rules are copied and frozen: mutating the input later changes nothing', () => {
    const rules: PolicyRule[] = [{ agent: 'a', tool: 't', users: ['alice'] }];
    const e = createPolicyEngine(rules);
    (rules[0] as PolicyRule).users!.push('mallory');
    (rules[0] as PolicyRule).agent = '*';
    expect(e.evaluate(input({ agentId: 'a', tool: 't', userId: 'mallory' })).effect).toBe('deny');
    const d = e.evaluate(input({ agentId: 'a', tool: 't', userId: 'alice' }));
    expect(Object.isFrozen(d.rule)).toBe(true);
  });
});

describe('createPolicyEngine: configuration errors', () => {
  const bad: Array<[unknown, string]> = [
    ['nope', 'policies'],
    [[{ tool: 't' }], 'policies.0.agent'],
    [[{ agent: '', tool: 't' }], 'policies.0.agent'],
    [[{ agent: 'a', tool: 't', effect: 'maybe' }], 'policies.0.effect'],
    [[{ agent: 'a', tool: 't', groups: [] }], 'policies.0.groups'],
    [[{ agent: 'a', tool: 't', users: ['ok', 'bad\n'] }], 'policies.0.users.1'],
    [[{ agent: 'a', tool: 't', domains: ['*.example.com'] }], 'policies.0.domains.0'],
    [[{ agent: 'a', tool: 't', group: ['typo'] }], 'policies.0'],
    [[{ agent: 'a', tool: 't' }, { agent: 'a', tool: 't', capabilities: [{ method: 'GET', path: '/a/*/b' }] }], 'policies.1.capabilities.0.path'],
    [[{ agent: 'a', tool: 't', capabilities: [] }], 'policies.0.capabilities'],
  ];
  it.each(bad)('%j → %s', (rules, field) => {
    expect.assertions(2);
    try {
      createPolicyEngine(rules as PolicyRule[]);
      expect.unreachable();
    } catch (e) {
      expect(e).toMatchObject({ code: 'CONFIG_INVALID' });
      expect((e as { field: string }).field.startsWith(field)).toBe(true);
    }
  });
});

// ---------- property: a claim no rule names never grants access ----------

const LEVEL: Record<PolicyEffect, number> = { deny: 0, approval: 1, allow: 2 };
const known = { users: ['u1', 'u2'], groups: ['g1', 'g2'], domains: ['a.com', 'b.com'], actors: ['x1', 'x2'] };
const maybeList = (vals: string[]) => fc.option(fc.subarray(vals, { minLength: 1 }), { nil: undefined });
const ruleArb: fc.Arbitrary<PolicyRule> = fc
  .record({
    agent: fc.constantFrom('ag', '*'),
    tool: fc.constantFrom('tl', '*'),
    users: maybeList(known.users),
    groups: maybeList(known.groups),
    domains: maybeList(known.domains),
    actors: maybeList(known.actors),
    capabilities: fc.option(fc.constant([{ method: 'GET', path: '/r/:id' }]), { nil: undefined }),
    effect: fc.constantFrom<PolicyEffect>('allow', 'approval', 'deny'),
  })
  .map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as unknown as PolicyRule);
const inputArb: fc.Arbitrary<PolicyInput> = fc.record({
  agentId: fc.constant('ag'),
  tool: fc.constant('tl'),
  userId: fc.option(fc.constantFrom(...known.users), { nil: undefined }),
  groups: fc.subarray(known.groups),
  domain: fc.option(fc.constantFrom(...known.domains), { nil: undefined }),
  actorChain: fc.subarray(known.actors),
  method: fc.constantFrom('GET', 'POST'),
  path: fc.constantFrom('/r/1', '/other'),
});

describe('createPolicyEngine: properties', () => {
  it('adding claims that no rule names (group, actor, domain or user where none was) never raises access', () => {
    fc.assert(
      fc.property(
        fc.array(ruleArb, { maxLength: 8 }),
        inputArb,
        fc.constantFrom('group', 'actor-first', 'actor-last', 'domain', 'user'),
        (rules, base, kind) => {
          const e = createPolicyEngine(rules);
          const more: PolicyInput = { ...base };
          if (kind === 'group') more.groups = [...base.groups, 'unknown-group'];
          if (kind === 'actor-first') more.actorChain = ['unknown-actor', ...base.actorChain];
          if (kind === 'actor-last') more.actorChain = [...base.actorChain, 'unknown-actor'];
          if (kind === 'domain' && base.domain === undefined) more.domain = 'unknown.org';
          if (kind === 'user' && base.userId === undefined) more.userId = 'unknown-user';
          expect(LEVEL[e.evaluate(more).effect]).toBeLessThanOrEqual(LEVEL[e.evaluate(base).effect]);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('agrees with a naive reference evaluator (same effect and same deciding rule)', () => {
    const refCap = (c: { method: string; path: string }, m: string, p: string): boolean => {
      if (c.method !== '*' && c.method.toUpperCase() !== m.toUpperCase()) return false;
      const ps = c.path.slice(1).split('/');
      const ss = p.slice(1).split('/');
      return ps.length === ss.length && ps.every((seg, k) => (seg.startsWith(':') ? ss[k] !== '' : seg === ss[k]));
    };
    const reference = (rules: PolicyRule[], i: PolicyInput): { effect: PolicyEffect; index: number } => {
      let best: { effect: PolicyEffect; index: number } = { effect: 'deny', index: -1 };
      rules.forEach((r, index) => {
        const effect = r.effect ?? 'allow';
        if (r.agent !== '*' && r.agent !== i.agentId) return;
        if (r.tool !== '*' && r.tool !== i.tool) return;
        if (r.users && (i.userId === undefined || !r.users.includes(i.userId))) return;
        if (r.groups && !i.groups.some((g) => r.groups!.includes(g))) return;
        if (r.domains && (i.domain === undefined || !r.domains.includes(i.domain.toLowerCase()))) return;
        if (r.actors) {
          const ok = effect === 'allow' ? i.actorChain.length > 0 && i.actorChain.every((a) => r.actors!.includes(a)) : i.actorChain.some((a) => r.actors!.includes(a));
          if (!ok) return;
        }
        if (r.capabilities && !r.capabilities.some((c) => refCap(c, i.method, i.path))) return;
        if (best.index === -1 || LEVEL[effect] < LEVEL[best.effect]) best = { effect, index };
      });
      return best;
    };
    const agentInput = inputArb.chain((i) => fc.constantFrom('ag', 'other').map((agentId) => ({ ...i, agentId })));
    fc.assert(
      fc.property(fc.array(ruleArb, { maxLength: 10 }), agentInput, (rules, i) => {
        const got = createPolicyEngine(rules).evaluate(i);
        const want = reference(rules, i);
        expect(got.effect).toBe(want.effect);
        if (want.index === -1) expect(got).toEqual({ effect: 'deny', reason: 'no_rule' });
        else expect(got.rule).toEqual({ effect: 'allow', ...rules[want.index] });
      }),
      { numRuns: 3000 },
    );
  });

  it('the result does not depend on the order of rules (except which rule is reported)', () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { maxLength: 8 }), inputArb, (rules, i) => {
        const a = createPolicyEngine(rules).evaluate(i).effect;
        const b = createPolicyEngine([...rules].reverse()).evaluate(i).effect;
        expect(a).toBe(b);
      }),
      { numRuns: 1000 },
    );
  });
});
