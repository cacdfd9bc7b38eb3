// Public exports of src/policy (owned by the policy work). Re-exported by src/index.ts.
export {};
