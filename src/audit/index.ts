// Public exports of src/audit (owned by the audit work). Re-exported by src/index.ts.
export {};
