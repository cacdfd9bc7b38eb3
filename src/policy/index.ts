// Public exports of src/policy (owned by the policy work). Re-exported by src/index.ts.
export { compileCapabilities } from './capabilities.js';
export type { Capability, CapabilityMatcher } from './capabilities.js';
export { createPolicyEngine } from './policies.js';
export type { PolicyEffect, PolicyRule, PolicyInput, PolicyDecision, PolicyEngine } from './policies.js';
export { createApprovals } from './approvals.js';
export type { Approvals, ApprovalsOptions, ApprovalRecord, ApprovalCheck, ApprovalCheckOptions, ApprovalRequestInput } from './approvals.js';
export { approverFromContext, isClientToken } from './approvers.js';
export type { Approver, ApproverRule, ApprovalRule } from './approvers.js';
export { verifyWebhookSignature, WEBHOOK_SIGNATURE_HEADER } from './notify.js';
export type { ApprovalNotification } from './notify.js';
