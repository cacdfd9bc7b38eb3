// Public exports of src/audit (owned by the audit work). Re-exported by src/index.ts.
export { jsonLinesAudit, memoryAudit } from './json-lines.js';
export type { AuditLineTarget, JsonLinesAudit, JsonLinesAuditOptions, MemoryAudit } from './json-lines.js';
export { verifyAuditChain, AUDIT_CHAIN_GENESIS } from './chain.js';
export type { VerifyAuditChainOptions, VerifyAuditChainResult } from './chain.js';
export { redactEvent } from './redact.js';
