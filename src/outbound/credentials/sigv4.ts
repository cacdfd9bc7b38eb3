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
