import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oauth from 'oauth4webapi';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { createTestIdentityProvider, type TestIdentityProvider } from '../../src/testing/index.js';

const API = 'https://api.example.test';
const AGENT_B = 'https://agent-b.example.test';
const REDIRECT = 'http://127.0.0.1:9/callback';
const insecure = { [oauth.allowInsecureRequests]: true };

let idp: TestIdentityProvider;
let as: oauth.AuthorizationServer;
let jwks: ReturnType<typeof createRemoteJWKSet>;

beforeAll(async () => {
  idp = await createTestIdentityProvider({
    resources: { [API]: { scopes: ['read', 'write'] } },
    users: { alice: { email: 'alice@example.com' } },
  });
  const issuer = new URL(idp.issuer);
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...insecure, algorithm: 'oidc' }));
  jwks = createRemoteJWKSet(new URL(idp.jwksUri));
});

afterAll(async () => {
  await idp?.close();
});

function escape(v: string): string {
  return v.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function startAuth(client: oauth.Client, extra: Record<string, string> = {}) {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(as.authorization_endpoint!);
  url.searchParams.set('client_id', client.client_id);
  url.searchParams.set('redirect_uri', REDIRECT);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('scope', 'openid read');
  url.searchParams.set('state', state);
  url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
  url.searchParams.set('code_challenge_method', 'S256');
  for (const [k, v] of Object.entries(extra)) url.searchParams.set(k, v);
  return { url: url.href, verifier, state };
}

describe('createTestIdentityProvider', () => {
  it('serves discovery with the expected features, issuer on 127.0.0.1', async () => {
    expect(idp.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(as.issuer).toBe(idp.issuer);
    expect(as.jwks_uri).toBe(idp.jwksUri);
    expect(as.token_endpoint).toBe(idp.tokenEndpoint);
    expect(as.code_challenge_methods_supported).toEqual(['S256']);
    expect(as.registration_endpoint).toBeDefined();
    expect(as.revocation_endpoint).toBeDefined();
    expect(as.introspection_endpoint).toBeDefined();
    expect(as.authorization_response_iss_parameter_supported).toBe(true);
    expect(as.grant_types_supported).toEqual(
      expect.arrayContaining(['authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange']),
    );
  });

  it('tokenFor() signs an at+jwt verifiable against the published JWKS', async () => {
    const token = await idp.tokenFor({ userId: 'alice', scopes: ['read'], audience: API, act: { sub: 'agent-a' } });
    const res = await fetch(idp.jwksUri);
    const { keys } = (await res.json()) as { keys: Array<Record<string, unknown>> };
    expect(keys).toHaveLength(1);
    expect(keys[0]).not.toHaveProperty('d');
    const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: idp.issuer, audience: API, typ: 'at+jwt' });
    expect(protectedHeader.kid).toBe(keys[0]!.kid);
    expect(payload).toMatchObject({ sub: 'alice', email: 'alice@example.com', email_verified: true, scope: 'read', act: { sub: 'agent-a' } });
    const expired = await idp.tokenFor({ userId: 'bob', expiresIn: -60 });
    await expect(jwtVerify(expired, jwks)).rejects.toMatchObject({ code: 'ERR_JWT_EXPIRED' });
  });

  it('runs a real authorization-code + PKCE flow, then refreshes with rotation', async () => {
    const reg = await idp.registerClient({ redirect_uris: [REDIRECT], token_endpoint_auth_method: 'client_secret_basic' });
    expect(reg.client_secret).toEqual(expect.any(String));
    const client: oauth.Client = { client_id: reg.client_id };
    const auth = oauth.ClientSecretBasic(reg.client_secret!);
    idp.resetStats();

    const { url, verifier, state } = await startAuth(client, { resource: API });
    const callback = new URL(await idp.authorize(url, { userId: 'alice' }));
    expect(callback.origin + callback.pathname).toBe(REDIRECT);
    expect(callback.searchParams.get('iss')).toBe(idp.issuer);
    const params = oauth.validateAuthResponse(as, client, callback, state);
    const codeRes = await oauth.authorizationCodeGrantRequest(as, client, auth, params, REDIRECT, verifier, insecure);
    const tokens = await oauth.processAuthorizationCodeResponse(as, client, codeRes);
    expect(tokens.refresh_token).toEqual(expect.any(String));
    expect(tokens.scope).toBe('read'); // the access token's scope: the resource's scopes only
    expect(tokens.id_token).toEqual(expect.any(String));
    const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer: idp.issuer, audience: API, typ: 'at+jwt' });
    expect(payload).toMatchObject({ sub: 'alice', email: 'alice@example.com', scope: 'read' });

    const r1 = await oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token!, insecure),
    );
    expect(r1.refresh_token).toEqual(expect.any(String));
    expect(r1.refresh_token).not.toBe(tokens.refresh_token);
    expect(decodeJwt(r1.access_token).aud).toBe(API);
    // the consumed refresh token is rejected (and revokes the grant)
    const replay = await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token!, insecure);
    await expect(oauth.processRefreshTokenResponse(as, client, replay)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect(idp.stats.token).toEqual({ authorization_code: 1, refresh_token: 2 });
  });

  it('requires PKCE, and deny gives error=access_denied', async () => {
    const reg = await idp.registerClient({ redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' });
    const client: oauth.Client = { client_id: reg.client_id };
    const noPkce = new URL(as.authorization_endpoint!);
    noPkce.search = new URLSearchParams({ client_id: reg.client_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', state: 's' }).toString();
    const errored = new URL(await idp.authorize(noPkce.href, { userId: 'alice' }));
    expect(errored.searchParams.get('error')).toBe('invalid_request');

    const { url, state } = await startAuth(client);
    const denied = new URL(await idp.authorize(url, { userId: 'alice', deny: true }));
    expect(denied.searchParams.get('error')).toBe('access_denied');
    expect(denied.searchParams.get('code')).toBeNull();
    expect(() => oauth.validateAuthResponse(as, client, denied, state)).toThrow();
  });

  it('authorize() reports an authorization request the server refuses as OAUTH_ERROR', async () => {
    const url = new URL(as.authorization_endpoint!);
    url.search = new URLSearchParams({ client_id: 'no-such-client', redirect_uri: REDIRECT, response_type: 'code', scope: 'openid' }).toString();
    await expect(idp.authorize(url, { userId: 'alice' })).rejects.toMatchObject({ code: 'OAUTH_ERROR', oauthError: 'invalid_client' });
    await expect(idp.authorize('http://127.0.0.1:9/auth', { userId: 'alice' })).rejects.toMatchObject({ code: 'REQUEST_INVALID' });
  });

  it('offers a login and consent form to a human with a browser', async () => {
    const reg = await idp.registerClient({ redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' });
    const { url } = await startAuth({ client_id: reg.client_id });
    const start = await fetch(url, { redirect: 'manual' });
    const cookie = start.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const page = await fetch(new URL(start.headers.get('location')!, idp.issuer), { headers: { cookie } });
    expect(page.headers.get('content-type')).toContain('text/html');
    const html = await page.text();
    expect(html).toContain('name="user_id"');
    expect(html).toContain(escape(reg.client_id));
  });

  it('client credentials with a resource give a JWT verifiable against /jwks, narrowed to the resource scopes', async () => {
    const reg = await idp.registerClient({ grant_types: ['client_credentials'] });
    const client: oauth.Client = { client_id: reg.client_id };
    const res = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      oauth.ClientSecretPost(reg.client_secret!),
      new URLSearchParams({ scope: 'read admin', resource: API }),
      insecure,
    );
    const tokens = await oauth.processClientCredentialsResponse(as, client, res);
    const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer: idp.issuer, audience: API, typ: 'at+jwt' });
    expect(payload.scope).toBe('read');
    expect(payload.client_id).toBe(reg.client_id);
    // an unconfigured resource accepts any requested scope
    const other = await oauth.processClientCredentialsResponse(
      as,
      client,
      await oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretPost(reg.client_secret!), new URLSearchParams({ scope: 'x:y', resource: AGENT_B }), insecure),
    );
    expect(decodeJwt(other.access_token)).toMatchObject({ aud: AGENT_B, scope: 'x:y' });
  });

  it('supports open dynamic client registration (RFC 7591)', async () => {
    const res = await oauth.dynamicClientRegistrationRequest(
      as,
      { redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none' },
      insecure,
    );
    const client = await oauth.processDynamicClientRegistrationResponse(res);
    expect(client.client_id).toEqual(expect.any(String));
    // MCP clients register with the resource's scopes; oidc-provider alone would refuse them
    const mcpLike = await oauth.processDynamicClientRegistrationResponse(
      await oauth.dynamicClientRegistrationRequest(
        as,
        { redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', scope: 'openid mcp:tools' },
        insecure,
      ),
    );
    expect(mcpLike.scope).toBe('openid');
    const bad = await fetch(as.registration_endpoint!, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'invalid_client_metadata' });
    const { url, verifier, state } = await startAuth({ client_id: client.client_id });
    const cb = new URL(await idp.authorize(url, { userId: 'carol' }));
    const params = oauth.validateAuthResponse(as, client, cb, state);
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, verifier, insecure),
    );
    expect(tokens.access_token).toEqual(expect.any(String));
    expect(tokens.refresh_token).toEqual(expect.any(String));
  });

  it('token exchange nests act, locks the audience and refuses scope escalation', async () => {
    const reg = await idp.registerClient({ client_id: 'agent-a' });
    const client: oauth.Client = { client_id: reg.client_id };
    const auth = oauth.ClientSecretBasic(reg.client_secret!);
    const subject = await idp.tokenFor({ userId: 'alice', scopes: ['read', 'write'], audience: 'https://agent-a.example.test', act: { sub: 'orchestrator' } });
    const exchange = (params: Record<string, string>) =>
      oauth.genericTokenEndpointRequest(
        as,
        client,
        auth,
        'urn:ietf:params:oauth:grant-type:token-exchange',
        new URLSearchParams({ subject_token: subject, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', ...params }),
        insecure,
      );
    const ok = await oauth.processGenericTokenEndpointResponse(as, client, await exchange({ audience: AGENT_B, scope: 'read' }));
    expect(ok.issued_token_type).toBe('urn:ietf:params:oauth:token-type:access_token');
    const { payload } = await jwtVerify(ok.access_token, jwks, { issuer: idp.issuer, audience: AGENT_B, typ: 'at+jwt' });
    expect(payload).toMatchObject({ sub: 'alice', scope: 'read', act: { sub: 'agent-a', act: { sub: 'orchestrator' } } });

    // second hop with an explicit actor token
    const actor = await idp.tokenFor({ userId: 'agent-b-service' });
    const hop2 = await oauth.processGenericTokenEndpointResponse(
      as,
      client,
      await oauth.genericTokenEndpointRequest(
        as,
        client,
        auth,
        'urn:ietf:params:oauth:grant-type:token-exchange',
        new URLSearchParams({
          subject_token: ok.access_token,
          subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
          actor_token: actor,
          actor_token_type: 'urn:ietf:params:oauth:token-type:access_token',
          resource: 'https://tool.example.test',
        }),
        insecure,
      ),
    );
    expect(decodeJwt(hop2.access_token)).toMatchObject({
      sub: 'alice',
      aud: 'https://tool.example.test',
      scope: 'read',
      act: { sub: 'agent-b-service', act: { sub: 'agent-a', act: { sub: 'orchestrator' } } },
    });

    await expect(
      oauth.processGenericTokenEndpointResponse(as, client, await exchange({ audience: AGENT_B, scope: 'read admin' })),
    ).rejects.toMatchObject({ error: 'invalid_scope' });
    // two audiences, also while a fault for another grant type makes the injector read the body
    idp.setFault({ kind: '5xx', grantType: 'refresh_token' });
    try {
      const body = new URLSearchParams({ subject_token: subject, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', scope: 'read' });
      body.append('audience', AGENT_B);
      body.append('audience', 'https://agent-c.example.test');
      const two = await oauth.processGenericTokenEndpointResponse(
        as,
        client,
        await oauth.genericTokenEndpointRequest(as, client, auth, 'urn:ietf:params:oauth:grant-type:token-exchange', body, insecure),
      );
      expect(decodeJwt(two.access_token).aud).toEqual([AGENT_B, 'https://agent-c.example.test']);
    } finally {
      idp.setFault(null);
    }
    // may_act (RFC 8693 §4.4) names the only actor allowed
    const restricted = await idp.tokenFor({ userId: 'alice', scopes: ['read'], claims: { may_act: { sub: 'someone-else' } } });
    const refused = await oauth.genericTokenEndpointRequest(
      as,
      client,
      auth,
      'urn:ietf:params:oauth:grant-type:token-exchange',
      new URLSearchParams({ subject_token: restricted, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', audience: AGENT_B }),
      insecure,
    );
    await expect(oauth.processGenericTokenEndpointResponse(as, client, refused)).rejects.toMatchObject({ error: 'invalid_grant' });
    // an expired subject token, and one without exp, are refused
    for (const bad of [
      await idp.tokenFor({ userId: 'alice', scopes: ['read'], expiresIn: -5 }),
      await idp.tokenFor({ userId: 'alice', scopes: ['read'], claims: { exp: undefined } }),
    ]) {
      const res = await oauth.genericTokenEndpointRequest(
        as,
        client,
        auth,
        'urn:ietf:params:oauth:grant-type:token-exchange',
        new URLSearchParams({ subject_token: bad, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', audience: AGENT_B }),
        insecure,
      );
      await expect(oauth.processGenericTokenEndpointResponse(as, client, res)).rejects.toMatchObject({ error: 'invalid_grant' });
    }
    // a subject token signed by someone else is refused
    const foreign = await createTestIdentityProvider();
    try {
      const forged = await foreign.tokenFor({ userId: 'alice', scopes: ['read'], claims: { iss: idp.issuer } });
      const res = await oauth.genericTokenEndpointRequest(
        as,
        client,
        auth,
        'urn:ietf:params:oauth:grant-type:token-exchange',
        new URLSearchParams({ subject_token: forged, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', audience: AGENT_B }),
        insecure,
      );
      await expect(oauth.processGenericTokenEndpointResponse(as, client, res)).rejects.toMatchObject({ error: 'invalid_grant' });
    } finally {
      await foreign.close();
    }
  });

  it('revokes refresh tokens (RFC 7009) and introspection reflects it', async () => {
    const reg = await idp.registerClient({ redirect_uris: [REDIRECT] });
    const client: oauth.Client = { client_id: reg.client_id };
    const auth = oauth.ClientSecretBasic(reg.client_secret!);
    const { url, verifier, state } = await startAuth(client);
    const params = oauth.validateAuthResponse(as, client, new URL(await idp.authorize(url, { userId: 'alice' })), state);
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, auth, params, REDIRECT, verifier, insecure),
    );
    // the opaque access token (no resource was asked for) can be the subject of a token exchange
    expect(tokens.access_token.split('.')).toHaveLength(1);
    const exchanged = await oauth.processGenericTokenEndpointResponse(
      as,
      client,
      await oauth.genericTokenEndpointRequest(
        as,
        client,
        auth,
        'urn:ietf:params:oauth:grant-type:token-exchange',
        new URLSearchParams({ subject_token: tokens.access_token, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', audience: AGENT_B }),
        insecure,
      ),
    );
    expect(decodeJwt(exchanged.access_token)).toMatchObject({ sub: 'alice', email: 'alice@example.com', aud: AGENT_B, act: { sub: reg.client_id } });
    const before = await oauth.processIntrospectionResponse(as, client, await oauth.introspectionRequest(as, client, auth, tokens.refresh_token!, insecure));
    expect(before.active).toBe(true);
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, tokens.refresh_token!, insecure));
    const after = await oauth.processIntrospectionResponse(as, client, await oauth.introspectionRequest(as, client, auth, tokens.refresh_token!, insecure));
    expect(after.active).toBe(false);
    const res = await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token!, insecure);
    await expect(oauth.processRefreshTokenResponse(as, client, res)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('injects faults in front of the token endpoint and recovers', async () => {
    const reg = await idp.registerClient({ grant_types: ['client_credentials'] });
    const client: oauth.Client = { client_id: reg.client_id };
    const auth = oauth.ClientSecretPost(reg.client_secret!);
    const cc = () => oauth.clientCredentialsGrantRequest(as, client, auth, new URLSearchParams({ resource: API, scope: 'read' }), insecure);
    idp.resetStats();

    idp.setFault({ kind: '5xx' });
    expect((await cc()).status).toBe(503);
    idp.setFault({ kind: 'invalid_grant' });
    await expect(oauth.processClientCredentialsResponse(as, client, await cc())).rejects.toMatchObject({ error: 'invalid_grant' });
    idp.setFault({ kind: 'invalid_client' });
    expect((await cc()).status).toBe(401);
    idp.setFault({ kind: 'slow', delayMs: 150 });
    const t0 = Date.now();
    const slow = await cc();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(slow.status).toBe(200);
    // a fault limited to another grant type, then one limited in count
    idp.setFault({ kind: '5xx', grantType: 'refresh_token' });
    expect((await cc()).status).toBe(200);
    idp.setFault({ kind: '5xx', times: 1 });
    expect((await cc()).status).toBe(503);
    expect((await cc()).status).toBe(200);
    idp.setFault(null);
    expect((await cc()).status).toBe(200);
    expect(idp.stats.token).toEqual({ client_credentials: 8 });
  });

  it('rotates tokenFor signing keys, counts JWKS fetches and injects JWKS faults', async () => {
    const local = await createTestIdentityProvider({ users: { dana: { email: 'dana@corp.example', groups: ['engineering'] } } });
    try {
      const keys = async () => ((await (await fetch(local.jwksUri)).json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);
      const [original] = await keys();
      expect(local.stats.jwks).toBe(1);
      const { kid: k1 } = await local.rotateSigningKey();
      expect(await keys()).toEqual([k1, original]);
      const t1 = await local.tokenFor({ userId: 'dana' });
      const { payload, protectedHeader } = await jwtVerify(t1, createRemoteJWKSet(new URL(local.jwksUri)), { typ: 'at+jwt' });
      expect(protectedHeader.kid).toBe(k1);
      expect(payload).toMatchObject({ sub: 'dana', email: 'dana@corp.example', groups: ['engineering'] });
      const { kid: k2 } = await local.rotateSigningKey({ retirePrevious: true });
      expect(await keys()).toEqual([k2, original]); // k1 retired, the provider's own key stays
      // a token signed with a retired key no longer verifies
      await expect(jwtVerify(t1, createRemoteJWKSet(new URL(local.jwksUri)))).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
      expect(local.stats.jwks).toBe(5);

      local.setFault({ endpoint: 'jwks', kind: '5xx', times: 1 });
      expect((await fetch(local.jwksUri)).status).toBe(503);
      expect((await fetch(local.jwksUri)).status).toBe(200);
      local.setFault({ endpoint: 'jwks', kind: '5xx' });
      local.setFault({ kind: '5xx' }); // the token fault does not replace the JWKS fault
      expect((await fetch(local.jwksUri)).status).toBe(503);
      local.setFault(null);
      expect((await fetch(local.jwksUri)).status).toBe(200);

      const idLike = await local.tokenFor({ userId: 'dana', typ: 'JWT' });
      expect(JSON.parse(atob(idLike.split('.')[0]!)).typ).toBe('JWT');
      local.resetStats();
      expect(local.stats).toEqual({ token: {}, jwks: 0, revocation: 0 });
    } finally {
      await local.close();
    }
  });

  it('exchanges subject tokens signed with a rotated key and keeps profile claims', async () => {
    const local = await createTestIdentityProvider({ users: { dana: { email: 'dana@corp.example', groups: ['eng'] } } });
    try {
      const localAs = await oauth.processDiscoveryResponse(new URL(local.issuer), await oauth.discoveryRequest(new URL(local.issuer), insecure));
      const reg = await local.registerClient({ client_id: 'agent-a' });
      await local.rotateSigningKey();
      const subject = await local.tokenFor({ userId: 'dana', scopes: ['read'] });
      const exchange = () =>
        oauth.genericTokenEndpointRequest(
          localAs,
          { client_id: 'agent-a' },
          oauth.ClientSecretPost(reg.client_secret!),
          'urn:ietf:params:oauth:grant-type:token-exchange',
          new URLSearchParams({ subject_token: subject, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', audience: AGENT_B }),
          insecure,
        );
      const out = await oauth.processGenericTokenEndpointResponse(localAs, { client_id: 'agent-a' }, await exchange());
      expect(decodeJwt(out.access_token)).toMatchObject({ sub: 'dana', email: 'dana@corp.example', groups: ['eng'], scope: 'read', act: { sub: 'agent-a' } });
      // once the subject token's key is retired, the grant refuses it
      await local.rotateSigningKey({ retirePrevious: true });
      await expect(oauth.processGenericTokenEndpointResponse(localAs, { client_id: 'agent-a' }, await exchange())).rejects.toMatchObject({
        error: 'invalid_grant',
      });
    } finally {
      await local.close();
    }
  });

  it('revokeGrants() makes a user\'s refresh tokens fail with a real invalid_grant', async () => {
    const reg = await idp.registerClient({ redirect_uris: [REDIRECT] });
    const client: oauth.Client = { client_id: reg.client_id };
    const auth = oauth.ClientSecretBasic(reg.client_secret!);
    const login = async (userId: string) => {
      const { url, verifier, state } = await startAuth(client);
      const params = oauth.validateAuthResponse(as, client, new URL(await idp.authorize(url, { userId })), state);
      return oauth.processAuthorizationCodeResponse(
        as,
        client,
        await oauth.authorizationCodeGrantRequest(as, client, auth, params, REDIRECT, verifier, insecure),
      );
    };
    const frank = await login('frank');
    const grace = await login('grace');
    expect(await idp.revokeGrants({ userId: 'frank', clientId: 'someone-else' })).toBe(0);
    expect(await idp.revokeGrants({ userId: 'frank' })).toBe(1);
    const refused = await oauth.refreshTokenGrantRequest(as, client, auth, frank.refresh_token!, insecure);
    await expect(oauth.processRefreshTokenResponse(as, client, refused)).rejects.toMatchObject({ error: 'invalid_grant' });
    const still = await oauth.refreshTokenGrantRequest(as, client, auth, grace.refresh_token!, insecure);
    expect((await oauth.processRefreshTokenResponse(as, client, still)).access_token).toEqual(expect.any(String));
  });

  it('can run without refresh-token rotation and without PKCE', async () => {
    const local = await createTestIdentityProvider({ refreshTokenRotation: false, pkceRequired: false, accessTokenTtl: 60 });
    try {
      const localAs = await oauth.processDiscoveryResponse(new URL(local.issuer), await oauth.discoveryRequest(new URL(local.issuer), insecure));
      const reg = await local.registerClient({ redirect_uris: [REDIRECT] });
      const client: oauth.Client = { client_id: reg.client_id };
      const auth = oauth.ClientSecretBasic(reg.client_secret!);
      const url = new URL(localAs.authorization_endpoint!);
      url.search = new URLSearchParams({ client_id: reg.client_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', state: 's' }).toString();
      const params = oauth.validateAuthResponse(localAs, client, new URL(await local.authorize(url, { userId: 'alice' })), 's');
      const tokens = await oauth.processAuthorizationCodeResponse(
        localAs,
        client,
        await oauth.authorizationCodeGrantRequest(localAs, client, auth, params, REDIRECT, oauth.nopkce, insecure),
      );
      expect(tokens.expires_in).toBe(60);
      for (let i = 0; i < 2; i++) {
        const r = await oauth.processRefreshTokenResponse(
          localAs,
          client,
          await oauth.refreshTokenGrantRequest(localAs, client, auth, tokens.refresh_token!, insecure),
        );
        expect(r.refresh_token ?? tokens.refresh_token).toBe(tokens.refresh_token);
      }
    } finally {
      await local.close();
    }
  });

  it('rejects invalid options and client metadata with CONFIG_INVALID', async () => {
    await expect(createTestIdentityProvider({ accessTokenTtl: -1 })).rejects.toMatchObject({ code: 'CONFIG_INVALID', field: 'accessTokenTtl' });
    await expect(idp.registerClient({ redirect_uris: ['not a url'] })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});
