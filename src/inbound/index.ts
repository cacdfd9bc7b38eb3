// Public exports of src/inbound (owned by the inbound work). Re-exported by src/index.ts.
export {};
