/**
 * A small real TokenSource backed by a loopback token server, for outbound tests (the real token
 * manager is tested on its own). The server issues opaque tokens and records every grant.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AgentIamError } from '../../src/errors.js';
import type { AccessTokenResult, TokenSource } from '../../src/tokens/types.js';

export interface TokenServer {
  readonly origin: string;
  readonly grants: Record<string, string>[];
  /** Users with a connected account, per connection. */
  readonly accounts: Map<string, Set<string>>;
  /** `hang`: never answer; `fail`: 500; undefined: normal. */
  mode: 'hang' | 'fail' | undefined;
  source: TokenSource;
  close(): Promise<void>;
}

export async function startTokenServer(): Promise<TokenServer> {
  const grants: Record<string, string>[] = [];
  const accounts = new Map<string, Set<string>>();
  const state = { mode: undefined as TokenServer['mode'] };
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      if (state.mode === 'hang') return;
      if (state.mode === 'fail') {
        res.writeHead(500).end();
        return;
      }
      const params = Object.fromEntries(new URLSearchParams(raw));
      grants.push(params);
      const token = `at.${params.grant_type}.${params.connection}.${params.user ?? params.subject ?? 'app'}.${params.scope ?? ''}`.replace(/[^\x21-\x7e]/g, '_');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: 300 }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const post = async (params: Record<string, string>): Promise<AccessTokenResult> => {
    const res = await fetch(`${origin}/token`, { method: 'POST', body: new URLSearchParams(params) });
    if (!res.ok) throw new AgentIamError('TOKEN_ENDPOINT_UNAVAILABLE', 'token endpoint failed');
    const json = (await res.json()) as { access_token: string; token_type: string };
    return { accessToken: json.access_token, tokenType: json.token_type, scopes: [] };
  };

  const source: TokenSource = {
    async getAccessToken({ connection, userId }) {
      if (!userId || !accounts.get(connection)?.has(userId)) {
        throw new AgentIamError('CONSENT_REQUIRED', 'no account');
      }
      return post({ grant_type: 'refresh_token', connection, user: userId });
    },
    async startAuthorization({ connection, userId }) {
      const st = `st-${connection}-${userId.length}`;
      return { url: `${origin}/authorize?client_id=agent&state=${st}`, state: st };
    },
    async clientCredentials({ connection, scopes, resource }) {
      return post({
        grant_type: 'client_credentials',
        connection,
        ...(scopes ? { scope: scopes.join(' ') } : {}),
        ...(resource ? { resource } : {}),
      });
    },
    async exchange({ connection, context, audience, scopes }) {
      if (!context?.userId) throw new AgentIamError('POLICY_DENIED', 'no subject');
      return post({
        grant_type: 'token-exchange',
        connection,
        subject: context.userId,
        ...(audience ? { audience } : {}),
        scope: scopes.join(' '),
      });
    },
  };

  return {
    origin,
    grants,
    accounts,
    get mode() {
      return state.mode;
    },
    set mode(m) {
      state.mode = m;
    },
    source,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
