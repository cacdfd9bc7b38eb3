// Public exports of src/policy (owned by the policy work). Re-exported by src/index.ts.
export { compileCapabilities } from './capabilities.js';
export type { Capability, CapabilityMatcher } from './capabilities.js';
export { createPolicyEngine } from './policies.js';
export type { PolicyEffect, PolicyRule, PolicyInput, PolicyDecision, PolicyEngine } from './policies.js';
export { createApprovals } from './approvals.js';
export type { Approvals, ApprovalsOptions, ApprovalRecord, ApprovalCheck, ApprovalCheckOptions, ApprovalRequestInput } from './approvals.js';
