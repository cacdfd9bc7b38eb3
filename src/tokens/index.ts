// Public exports of src/tokens (owned by the tokens work). Re-exported by src/index.ts.
export {};
