/**
 * An in-memory oidc-provider adapter without a size bound, one per test identity provider.
 *
 * oidc-provider's built-in memory adapter keeps at most 1,000 entries per provider (sessions,
 * grants, codes, refresh tokens and their indexes all count), then silently forgets the oldest:
 * beyond about 150 connected users, refresh tokens vanish and refreshes fail with `invalid_grant`.
 * Entries here live until they expire; expired ones are swept as new ones are written.
 *
 * @module
 */

interface Entry {
  value: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  expiresAt: number;
}

const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest', 'PreAuthorizedCode']);

/** A factory for oidc-provider's `adapter` option; all models of one provider share one map. */
export function createUnboundedMemoryAdapter(): (model: string) => object {
  const store = new Map<string, Entry>();
  const grants = new Map<string, Set<string>>();
  let writes = 0;

  const get = (key: string): any => {
    const e = store.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return e.value;
  };
  const set = (key: string, value: unknown, expiresIn?: number): void => {
    store.set(key, { value, expiresAt: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity });
    if (++writes % 1000 === 0) {
      const now = Date.now();
      for (const [k, e] of store) if (e.expiresAt <= now) store.delete(k);
      for (const [g, members] of grants) {
        for (const m of members) if (!store.has(m)) members.delete(m);
        if (members.size === 0) grants.delete(g);
      }
    }
  };

  return (model: string) => {
    const key = (id: string): string => `${model}:${id}`;
    return {
      async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number) {
        if (model === 'Session' && typeof payload.uid === 'string') set(`sessionUid:${payload.uid}`, id, expiresIn);
        if (typeof payload.userCode === 'string') set(`userCode:${payload.userCode}`, id, expiresIn);
        if (GRANTABLE.has(model) && typeof payload.grantId === 'string') {
          let members = grants.get(payload.grantId);
          if (members === undefined) grants.set(payload.grantId, (members = new Set()));
          members.add(key(id));
        }
        set(key(id), payload, expiresIn);
      },
      async find(id: string) {
        return get(key(id));
      },
      async findByUid(uid: string) {
        const id = get(`sessionUid:${uid}`);
        return id === undefined ? undefined : get(key(id));
      },
      async findByUserCode(userCode: string) {
        const id = get(`userCode:${userCode}`);
        return id === undefined ? undefined : get(key(id));
      },
      async consume(id: string) {
        const payload = get(key(id));
        if (payload !== undefined) payload.consumed = Math.floor(Date.now() / 1000);
      },
      async destroy(id: string) {
        store.delete(key(id));
      },
      async revokeByGrantId(grantId: string) {
        for (const k of grants.get(grantId) ?? []) store.delete(k);
        grants.delete(grantId);
      },
    };
  };
}
