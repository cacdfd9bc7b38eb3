import { hasControlChars } from './encoding.js';
import { AgentIamError, configError } from '../errors.js';

/** True for loopback host names: 127.0.0.0/8, [::1] and localhost. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, '');
  if (host === 'localhost' || host === '[::1]' || host === '::1') return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Parse `value` and require `https:` (plain `http:` only for loopback hosts), no userinfo, no fragment.
 * Throws `CONFIG_INVALID` naming `field` at configuration time, or `errorCode` (e.g. for URLs
 * learned from discovery at run time).
 */
export function requireSecureUrl(
  value: string | URL,
  field: string,
  errorCode: 'CONFIG_INVALID' | 'OAUTH_ERROR' | 'TOKEN_ENDPOINT_UNAVAILABLE' = 'CONFIG_INVALID',
): URL {
  const fail = (why: string): AgentIamError =>
    errorCode === 'CONFIG_INVALID' ? configError(field, why) : new AgentIamError(errorCode, `${field} ${why}`, { field });
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    throw fail('is not a valid URL');
  }
  if (url.username !== '' || url.password !== '') throw fail('must not contain credentials');
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return url;
  throw fail('must use https (http only for loopback hosts)');
}

/** True when `value` is an https URL, or http on loopback. */
export function isSecureUrl(value: string | URL): boolean {
  try {
    requireSecureUrl(value, 'url');
    return true;
  } catch {
    return false;
  }
}

/**
 * A Client ID Metadata Document URL (draft-ietf-oauth-client-id-metadata-document §3): https (http
 * only on loopback), a path, no fragment, query, dot segments, spaces or backslashes, written in
 * canonical form (the authorization server compares the document's `client_id` with the URL it
 * fetched, character for character). One rule for `clientMetadataDocument()` and a connection's
 * `clientMetadataUrl`.
 */
export function checkClientIdUrl(value: string, field: string): URL {
  if (/[\s\\]/.test(value) || hasControlChars(value)) throw configError(field, 'must not contain spaces, backslashes or control characters');
  const url = requireSecureUrl(value, field);
  if (value.includes('#')) throw configError(field, 'must not contain a fragment');
  if (url.search !== '') throw configError(field, 'should not contain a query');
  const rawPath = value.replace(/^[a-z]+:\/\/[^/?#]*/i, '').split('?')[0] ?? '';
  if (rawPath === '' || rawPath === '/') throw configError(field, 'must contain a path, e.g. https://agent.example.com/oauth/client.json');
  if (rawPath.split('/').some((seg) => /^(\.|%2e){1,2}$/i.test(seg))) throw configError(field, 'must not contain dot segments');
  if (url.href !== value) throw configError(field, `must be written in canonical form: ${url.href}`);
  return url;
}
