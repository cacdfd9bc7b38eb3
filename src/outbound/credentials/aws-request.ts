/**
 * Request shaping for SigV4 that needs no signer: kept apart so that the signer
 * (`@smithy/signature-v4`) is loaded only when a tool uses `awsSigV4`.
 *
 * @module
 */

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
