// Public exports of src/outbound (owned by the outbound work). Re-exported by src/index.ts.
export {};
