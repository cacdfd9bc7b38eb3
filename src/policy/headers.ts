/**
 * Request headers that change what a tool does: toolFetch refuses them unless the tool lists them in
 * `allowHeaders`, and an approval binds the value of every one that is allowed and sent. Shared by
 * the tool definitions (outbound) and the approvals (policy), hence here.
 *
 * @module
 */

/**
 * Headers many servers honour to run another method than the one on the request line (Express
 * `method-override`, Rails/Rack, Laravel, Symfony, ASP.NET, Google and Azure APIs).
 */
export const METHOD_OVERRIDE_HEADERS: readonly string[] = Object.freeze(['x-http-method-override', 'x-method-override', 'x-http-method']);

/**
 * Headers some servers honour to act on another path or host than the one sent (IIS and Symfony
 * `X-Original-URL` / `X-Rewrite-URL`, and host overrides behind some proxies).
 */
export const TARGET_OVERRIDE_HEADERS: readonly string[] = Object.freeze(['x-original-url', 'x-rewrite-url', 'x-host', 'x-http-host-override']);

/** @internal Every header a tool may allow with `allowHeaders` (lower case). */
export const ALLOWABLE_HEADERS: ReadonlySet<string> = new Set([...METHOD_OVERRIDE_HEADERS, ...TARGET_OVERRIDE_HEADERS]);

/** @internal */
export const METHOD_OVERRIDES: ReadonlySet<string> = new Set(METHOD_OVERRIDE_HEADERS);
