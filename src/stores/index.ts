// Public exports of src/stores (owned by the stores work). Re-exported by src/index.ts.
export {};
