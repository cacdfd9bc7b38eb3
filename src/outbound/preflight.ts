/**
 * @internal The preflight of a toolFetch: the decisions of a call without the call. The framework
 * adapters ask it before a tool runs (AI SDK `toolApproval`, OpenAI Agents and Mastra approval
 * functions), so that the framework pauses where agent-iam's policy says a human must approve.
 *
 * Not part of the public API: reached through a symbol on the function `createToolFetch` returns.
 *
 * @module
 */
import type { ToolFetch, ToolFetchInit } from './tool-fetch.js';

/** The key of the preflight on a toolFetch (shared by the ESM and CJS builds). */
export const PREFLIGHT: unique symbol = Symbol.for('agent-iam.toolFetch.preflight.v1') as never;

/** What a call would do now: the tool, method and URL it would send, and the approval that lets it. */
export interface ToolPreflight {
  tool: string;
  method: string;
  /** The URL as it would be sent. */
  url: string;
  /** Set when a policy sends the request to approval and it is approved (not spent by the preflight). */
  approvalId?: string;
  /** @internal Set by the caller: look at the credential too. */
  credential?: boolean;
}

/** The preflight function of a toolFetch. */
export type Preflight = (input: string | URL | Request, init?: ToolFetchInit, options?: { credential?: boolean }) => Promise<ToolPreflight>;

/**
 * The preflight of `toolFetch`: runs URL safety, tool, headers, policy, capability and approval
 * (creating a pending approval when one is needed, never spending one) and throws what the real call
 * would throw there (`POLICY_DENIED`, `CAPABILITY_DENIED`, `APPROVAL_REQUIRED`, ...). With
 * `{ credential: true }` it also obtains the credential (kept in memory, never sent), so that a
 * missing account is `CONSENT_REQUIRED` before the tool runs. Undefined for a fetch that
 * `createToolFetch` did not build.
 */
export function preflightOf(toolFetch: ToolFetch): Preflight | undefined {
  const fn = (toolFetch as unknown as Record<symbol, unknown>)[PREFLIGHT];
  return typeof fn === 'function' ? (fn as Preflight) : undefined;
}
