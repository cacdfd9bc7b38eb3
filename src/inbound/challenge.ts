/**
 * Builds the inbound errors, each with its RFC 6750 `WWW-Authenticate` challenge.
 *
 * @module
 */
import { AgentIamError, bearerChallenge, bearerErrorFor, type AgentIamErrorCode } from '../errors.js';

/** The challenge parameters fixed for one verifier (realm, RFC 9728 metadata URL). */
export interface ChallengeSettings {
  realm?: string;
  resourceMetadata?: string;
}

/**
 * @internal Makes inbound errors. Challenges without a scope are pre-built once per code, so an
 * error on the hot path costs one object.
 */
export class InboundErrors {
  readonly #settings: ChallengeSettings;
  readonly #cache = new Map<string, string>();

  constructor(settings: ChallengeSettings) {
    this.#settings = settings;
  }

  /** The challenge for `code` (`invalidRequest` turns it into `error="invalid_request"`). */
  challenge(code: AgentIamErrorCode, invalidRequest = false): string {
    const key = invalidRequest ? `${code}:req` : code;
    let value = this.#cache.get(key);
    if (value === undefined) {
      value = bearerChallenge({
        ...this.#settings,
        error: invalidRequest ? 'invalid_request' : bearerErrorFor(code),
      });
      this.#cache.set(key, value);
    }
    return value;
  }

  /** An inbound error. `message` must never contain the token or any part of it. */
  error(code: AgentIamErrorCode, message: string): AgentIamError {
    return new AgentIamError(code, message, { wwwAuthenticate: this.challenge(code) });
  }

  /**
   * A request-level fault (several `Authorization` headers): `TOKEN_MALFORMED`, status 400,
   * `error="invalid_request"` (RFC 6750 §3.1).
   */
  invalidRequest(message: string): AgentIamError {
    return new AgentIamError('TOKEN_MALFORMED', message, {
      status: 400,
      wwwAuthenticate: this.challenge('TOKEN_MALFORMED', true),
    });
  }

  /**
   * `TOKEN_MISSING` (401) for a request without a token on a route that needs scopes: no `error`
   * (RFC 6750 §3.1), but `scope="..."` so the client knows what to ask for.
   */
  missingTokenForScopes(required: readonly string[]): AgentIamError {
    return new AgentIamError('TOKEN_MISSING', 'A bearer token is required', {
      wwwAuthenticate: bearerChallenge({ ...this.#settings, scope: [...required] }),
    });
  }

  /** `INSUFFICIENT_SCOPE` (403) with `scope="..."` naming every required scope. */
  insufficientScope(required: readonly string[]): AgentIamError {
    const scopes = [...required];
    return new AgentIamError('INSUFFICIENT_SCOPE', 'The token does not grant the required scopes', {
      scopes,
      wwwAuthenticate: bearerChallenge({ ...this.#settings, error: 'insufficient_scope', scope: scopes }),
    });
  }
}
