// agent-iam/testing entry (Node only; needs the optional peer oidc-provider).
export {};
