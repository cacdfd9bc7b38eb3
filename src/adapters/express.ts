// Express adapter: see src/adapters/express.ts (owned by the adapters work).
export {};
