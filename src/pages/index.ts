// Public exports of src/pages: the approvals inbox and connected accounts pages. Re-exported by src/index.ts.
export { createPages } from './pages.js';
export type { PagesOptions, PagesApprovals, PagesTokenManager, PageRequest, PageUser } from './pages.js';
