import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    express: 'src/adapters/express.ts',
    hono: 'src/adapters/hono.ts',
    mcp: 'src/mcp/index.ts',
    testing: 'src/testing/index.ts',
    redis: 'src/redis/index.ts',
    postgres: 'src/postgres/index.ts',
  },
  format: ['esm', 'cjs'],
  // `@internal` declarations never reach a published .d.ts (api/*.api.md is the public surface).
  dts: { compilerOptions: { stripInternal: true } },
  sourcemap: true,
  clean: true,
  target: 'es2022',
  platform: 'neutral',
  splitting: true,
  treeshake: true,
  // Keep `node:async_hooks` as written: Deno and Workers resolve only the prefixed form.
  removeNodeProtocol: false,
  external: ['express', 'hono', 'oidc-provider', 'redis', 'ioredis', 'pg', /^node:/, /^@modelcontextprotocol\//],
});
