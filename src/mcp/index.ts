// agent-iam/mcp entry. export {};
export {};
