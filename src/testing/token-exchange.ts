// RFC 8693 token exchange for the test identity provider: a grant handler for oidc-provider.
import { jwtVerify, SignJWT, type CryptoKey } from 'jose';

/** The grant type URN of RFC 8693. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

/** The parameters oidc-provider must accept for the grant; `audience` and `resource` may repeat. */
export const TOKEN_EXCHANGE_PARAMETERS = [
  'subject_token',
  'subject_token_type',
  'actor_token',
  'actor_token_type',
  'audience',
  'resource',
  'scope',
  'requested_token_type',
];
export const TOKEN_EXCHANGE_DUPLICATES = ['audience', 'resource'];

const REGISTERED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'client_id', 'scope', 'cnf', 'act', 'may_act', 'azp']);

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

export interface TokenExchangeSettings {
  issuer: string;
  /** The key new tokens are signed with. */
  signingKey: () => SigningKey;
  /** A published key by `kid`, to verify subject and actor tokens. */
  keyFor: (kid: unknown) => SigningKey | undefined;
  /** The claims of an opaque access token this provider issued, if it is known and unexpired. */
  findOpaque: (token: string) => Promise<Record<string, unknown> | undefined>;
  accessTokenTtl: number;
  defaultResource: string | undefined;
  resources: Record<string, { scopes?: string[] | undefined; accessTokenTtl?: number | undefined }>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  errors: any;
}

/** Sign an RFC 9068 JWT access token with the provider's published key. */
export async function signAccessToken(key: SigningKey, payload: Record<string, unknown>, typ = 'at+jwt'): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: key.kid, typ }).sign(key.privateKey);
}

function list(value: unknown): string[] {
  if (value === undefined || value === null || value === '') return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}

function scopesOf(value: unknown): string[] {
  return typeof value === 'string' ? value.split(' ').filter((s) => s !== '') : [];
}

/**
 * Build the oidc-provider grant handler. The subject token (and actor token, when sent) must be a
 * JWT issued and signed by this provider; the issued token keeps the subject's `sub`, nests any
 * earlier `act` under the new actor, is audience-locked, and never carries a scope the subject
 * token lacks.
 */
export function tokenExchangeHandler(settings: TokenExchangeSettings) {
  const { errors } = settings;

  async function verifyJwt(token: unknown, what: string): Promise<Record<string, unknown>> {
    if (typeof token !== 'string' || token === '') throw new errors.InvalidRequest(`missing ${what}`);
    if (token.split('.').length !== 3) {
      const claims = await settings.findOpaque(token);
      if (claims === undefined) throw new errors.InvalidGrant(`${what} is invalid, expired, or not issued by this server`);
      return claims;
    }
    try {
      const resolve = (header: { kid?: string }): CryptoKey => {
        const key = settings.keyFor(header.kid);
        if (key === undefined) throw new Error('unknown kid');
        return key.publicKey;
      };
      const { payload } = await jwtVerify(token, resolve, {
        issuer: settings.issuer,
        algorithms: ['RS256'],
        requiredClaims: ['exp', 'sub'],
      });
      return payload as Record<string, unknown>;
    } catch {
      throw new errors.InvalidGrant(`${what} is invalid, expired, or not issued by this server`);
    }
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return async function tokenExchangeGrant(ctx: any): Promise<void> {
    const params = ctx.oidc.params as Record<string, unknown>;
    const subjectType = params.subject_token_type;
    if (subjectType !== ACCESS_TOKEN_TYPE && subjectType !== JWT_TOKEN_TYPE) {
      throw new errors.InvalidRequest('unsupported subject_token_type');
    }
    if (params.requested_token_type !== undefined && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
      throw new errors.InvalidRequest('unsupported requested_token_type');
    }
    const subject = await verifyJwt(params.subject_token, 'subject_token');
    if (typeof subject.sub !== 'string' || subject.sub === '') throw new errors.InvalidGrant('subject_token has no sub');

    let actorSub: string;
    if (params.actor_token !== undefined) {
      const actorType = params.actor_token_type;
      if (actorType !== ACCESS_TOKEN_TYPE && actorType !== JWT_TOKEN_TYPE) {
        throw new errors.InvalidRequest('actor_token_type missing or unsupported');
      }
      const actor = await verifyJwt(params.actor_token, 'actor_token');
      if (typeof actor.sub !== 'string' || actor.sub === '') throw new errors.InvalidGrant('actor_token has no sub');
      actorSub = actor.sub;
    } else {
      actorSub = String(ctx.oidc.client.clientId);
    }

    // RFC 8693 §4.4: a subject token that names who may act for it admits no other actor.
    const mayAct = subject.may_act;
    if (mayAct !== null && typeof mayAct === 'object' && 'sub' in mayAct && (mayAct as { sub: unknown }).sub !== actorSub) {
      throw new errors.InvalidGrant('the actor is not allowed to act for the subject (may_act)');
    }

    const audiences = [...list(params.audience), ...list(params.resource)];
    if (audiences.length === 0 && settings.defaultResource !== undefined) audiences.push(settings.defaultResource);
    if (audiences.length === 0) throw new errors.InvalidTarget('audience or resource is required');

    const held = new Set(scopesOf(subject.scope));
    const requested = params.scope !== undefined ? scopesOf(params.scope) : [...held];
    const escalated = requested.filter((s) => !held.has(s));
    if (escalated.length > 0) {
      throw new errors.InvalidScope('requested scope exceeds the subject token', escalated.join(' '));
    }
    let granted = requested;
    let ttl = settings.accessTokenTtl;
    for (const aud of audiences) {
      const conf = settings.resources[aud];
      if (conf?.accessTokenTtl !== undefined) ttl = Math.min(ttl, conf.accessTokenTtl);
      if (conf?.scopes !== undefined) {
        const allowed = new Set(conf.scopes);
        if (params.scope !== undefined) {
          const outside = granted.filter((s) => !allowed.has(s));
          if (outside.length > 0) throw new errors.InvalidScope('requested scope is not offered by the audience', outside.join(' '));
        } else {
          granted = granted.filter((s) => allowed.has(s));
        }
      }
    }

    const act: Record<string, unknown> = { sub: actorSub };
    if (subject.act !== null && typeof subject.act === 'object') act.act = subject.act;
    const now = Math.floor(Date.now() / 1000);
    const payload: Record<string, unknown> = {
      iss: settings.issuer,
      sub: subject.sub,
      aud: audiences.length === 1 ? audiences[0] : audiences,
      iat: now,
      exp: now + ttl,
      jti: crypto.randomUUID(),
      client_id: String(ctx.oidc.client.clientId),
      act,
    };
    if (granted.length > 0) payload.scope = granted.join(' ');
    // The user's profile claims (email, groups, ...) travel with the subject; registered claims do not.
    for (const [claim, value] of Object.entries(subject)) {
      if (!(claim in payload) && !REGISTERED.has(claim)) payload[claim] = value;
    }

    const accessToken = await signAccessToken(settings.signingKey(), payload);
    ctx.body = {
      access_token: accessToken,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: 'Bearer',
      expires_in: ttl,
      ...(granted.length > 0 ? { scope: granted.join(' ') } : {}),
    };
  };
}
