// Hono adapter.
export {};
