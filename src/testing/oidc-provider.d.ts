// Minimal ambient types for oidc-provider (it ships none). Deliberately loose: agent-iam/testing
// exposes the provider only as `unknown`, so these types never leak into the public API.
declare module 'oidc-provider' {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const Provider: any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  export const errors: any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  export const interactionPolicy: any;
  export { Provider };
  export default Provider;
}
// The two modules that the entry module re-exports (see loadOidcProvider).
declare module 'oidc-provider/lib/provider.js' {
  export const Provider: unknown;
}
declare module 'oidc-provider/lib/helpers/errors.js' {
  const errors: Record<string, unknown>;
  export = errors;
}
