/**
 * Internal: connected-account records as stored (encrypted) and their public, token-free view.
 *
 * @module
 */
import { storeKey } from '../stores/store.js';
import type { AccountStatus, ConnectedAccount } from './types.js';
import { nowMs } from '../lib/clock.js';

/** Owner of an account: a user or an organisation. */
export type OwnerType = 'user' | 'org';

/** A stored account. Holds token material: only ever written through the (encrypted) store. */
export interface AccountRecord {
  v: 1;
  connection: string;
  ownerType: OwnerType;
  ownerId: string;
  kind: 'oauth2' | 'apiKey';
  status: AccountStatus;
  scopes: string[];
  accessToken?: string;
  refreshToken?: string;
  tokenType?: string;
  expiresAt?: number;
  /**
   * The authorization server that granted the tokens. A refresh token is only ever sent to it: if
   * the connection now resolves to another server (a resource's metadata changed), the account needs
   * consent again. Absent in records written by earlier builds.
   */
  issuer?: string;
  /** Incremented on every token write; a refresh writes only if the generation it read is current. */
  generation: number;
  createdAt: number;
  updatedAt: number;
}

export function accountKey(connection: string, ownerType: OwnerType, ownerId: string): string {
  return storeKey('account', connection, ownerType, ownerId);
}

/** The set of connection ids an owner has accounts on (a store index, members in plaintext). */
export function indexKey(ownerType: OwnerType, ownerId: string): string {
  return storeKey('account-index', ownerType, ownerId);
}

/** The encrypted string[] index that builds before the store contract kept (read, never written). */
export function legacyIndexKey(ownerType: OwnerType, ownerId: string): string {
  return storeKey('accounts', ownerType, ownerId);
}

export function isAccountRecord(v: unknown): v is AccountRecord {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Partial<AccountRecord>;
  return r.v === 1 && typeof r.connection === 'string' && typeof r.ownerId === 'string' && typeof r.generation === 'number' && Array.isArray(r.scopes);
}

/** The status a caller sees: an access token past its expiry with no refresh token is `expired`. */
export function effectiveStatus(r: AccountRecord, now: number): AccountStatus {
  if (r.status === 'active' && r.kind === 'oauth2' && r.expiresAt !== undefined && r.expiresAt <= now && r.refreshToken === undefined) return 'expired';
  return r.status;
}

/** The public view: never any token. */
export function toConnectedAccount(r: AccountRecord, now = nowMs()): ConnectedAccount {
  const out: ConnectedAccount = {
    connection: r.connection,
    status: effectiveStatus(r, now),
    kind: r.kind,
    scopes: [...r.scopes],
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
  if (r.ownerType === 'user') out.userId = r.ownerId;
  else out.orgId = r.ownerId;
  if (r.expiresAt !== undefined) out.expiresAt = r.expiresAt;
  return out;
}

/** Split a `scope` answer by the connection's separator (and spaces). */
export function splitScopes(value: string | undefined, separator: string): string[] | undefined {
  if (value === undefined) return undefined;
  const parts = separator === ' ' ? value.split(' ') : value.split(new RegExp(`[ ${separator.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}]`));
  return parts.filter((s) => s !== '');
}
