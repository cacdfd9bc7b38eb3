/**
 * AWS Signature Version 4 via `@smithy/signature-v4` and `@aws-crypto/sha256-js`.
 *
 * S3 differs from every other service: its canonical URI is the path encoded once (no
 * normalisation, no double encoding), and it requires `x-amz-content-sha256`.
 *
 * @module
 */
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentials } from '../tools.js';

/** @internal What the signer needs to know about a request. */
export interface SignableRequest {
  method: string;
  hostname: string;
  /** `host` header value: hostname plus a non-default port. */
  host: string;
  /** The path exactly as sent on the wire. */
  path: string;
  query: Record<string, string | string[]>;
  /** Lower-case names. */
  headers: Record<string, string>;
  body?: Uint8Array | string;
}

/** @internal Options of one SigV4 tool. */
export interface SigV4Config {
  region: string;
  service: string;
  credentials: AwsCredentials | (() => Promise<AwsCredentials>);
  signPayload: boolean;
}

/** @internal A signer bound to one tool's region, service and credential source. */
export interface SigV4Signer {
  /** Returns the headers to add (lower-case): authorization, x-amz-date, x-amz-security-token, x-amz-content-sha256. */
  sign(request: SignableRequest, credentials: AwsCredentials, signingDate?: Date): Promise<Record<string, string>>;
}

const UNSIGNED = 'UNSIGNED-PAYLOAD';
const GENERATED = ['authorization', 'x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256'] as const;

/** @internal */
export function createSigV4Signer(config: Omit<SigV4Config, 'credentials'>): SigV4Signer {
  const s3 = config.service === 's3';
  return {
    async sign(request, credentials, signingDate) {
      const signer = new SignatureV4({
        credentials,
        region: config.region,
        service: config.service,
        sha256: Sha256,
        // S3: the path as sent (encoded once, not normalised); others: normalised and encoded again.
        uriEscapePath: !s3,
        applyChecksum: s3 || !config.signPayload,
      });
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(request.headers)) {
        if (!k.startsWith('x-amz-') && k !== 'authorization') headers[k] = v;
      }
      headers.host = request.host;
      if (!config.signPayload) headers['x-amz-content-sha256'] = UNSIGNED;
      const signed = await signer.sign(
        {
          method: request.method,
          protocol: 'https:',
          hostname: request.hostname,
          path: request.path,
          query: request.query,
          headers,
          body: request.body,
        },
        signingDate === undefined ? {} : { signingDate },
      );
      const out: Record<string, string> = {};
      for (const name of GENERATED) {
        const value = signed.headers[name];
        if (typeof value === 'string') out[name] = value;
      }
      return out;
    },
  };
}

/** @internal AWS URI encoding of one path segment (RFC 3986 unreserved characters kept). */
function awsEncodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * @internal The wire path for S3: each segment decoded and encoded again with AWS's rules, so that
 * the path sent is exactly the canonical URI. The path has passed the URL checks (no encoded `/`).
 */
export function s3Path(pathname: string): string {
  return pathname
    .split('/')
    .map((segment) => awsEncodeSegment(decodeURIComponent(segment)))
    .join('/');
}

/**
 * @internal A raw query string (`?a=1&b=2` or `''`) as the signer's query record, decoded as
 * RFC 3986 (a `+` stays a `+`, as AWS reads it). Throws `URIError` on malformed UTF-8.
 */
export function queryRecord(search: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const query = search.startsWith('?') ? search.slice(1) : search;
  if (query === '') return out;
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const k = decodeURIComponent(eq === -1 ? pair : pair.slice(0, eq));
    const v = eq === -1 ? '' : decodeURIComponent(pair.slice(eq + 1));
    const prev = out[k];
    if (prev === undefined) out[k] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else out[k] = [prev, v];
  }
  return out;
}
