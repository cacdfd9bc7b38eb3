/**
 * Internal: what the flows share inside one token manager.
 *
 * @module
 */
import type * as oauth from 'oauth4webapi';
import type { AuditEvent, AuditSink } from '../audit/events.js';
import { emitAudit } from '../audit/events.js';
import type { Store } from '../stores/store.js';
import type { Connection } from './connections.js';
import type { ServerInfo } from './discovery.js';
import type { HttpSettings } from './http.js';
import type { ClientInfo } from './registration.js';
import { isoNow } from '../lib/clock.js';

export interface Runtime {
  readonly http: HttpSettings;
  /** Accounts, states, registrations: encrypted when a key is configured. */
  readonly store: Store;
  /** The same store without encryption, for values that are not secret and must be compared: lease owners, index members. */
  readonly shared: Store;
  /** Lifetime of a lease (refresh, registration): longer than the slowest protocol call plus two store calls. */
  readonly leaseTtlMs: number;
  readonly audit: AuditSink | undefined;
  readonly refreshSkewMs: number;
  readonly stateTtlMs: number;
  connection(id: string): Connection;
  /** Run a step with the connection's server and client; a dynamic client the server forgot is registered again, once. */
  withClient<T>(c: Connection, fn: (server: ServerInfo, client: ClientInfo) => Promise<T>, reRegister?: boolean): Promise<T>;
  server(c: Connection): Promise<ServerInfo>;
}

export function audit(rt: Runtime, event: Omit<AuditEvent, 'time'>): void {
  if (rt.audit === undefined) return;
  emitAudit(rt.audit, { time: isoNow(), ...event });
}

export type TokenResponse = oauth.TokenEndpointResponse;
