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
    'ai-sdk': 'src/adapters/ai-sdk.ts',
    'openai-agents': 'src/adapters/openai-agents.ts',
    langgraph: 'src/adapters/langgraph.ts',
    mastra: 'src/adapters/mastra.ts',
    undici: 'src/adapters/undici.ts',
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
  // Optional peers stay imports of the user's own copy (the framework adapters load theirs lazily).
  external: ['express', 'hono', 'oidc-provider', 'redis', 'ioredis', 'pg', /^node:/, /^@modelcontextprotocol\//, 'ai', /^ai\//, /^@openai\//, /^@langchain\//, /^@mastra\//, 'undici', /^undici\//],
});
