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
