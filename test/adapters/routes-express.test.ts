import express from 'express';
import { agentAuth, approvalRoutes, consentRoutes } from '../../src/adapters/express.js';
import { ADMIN_SCOPE, routeSuite } from '../app/routes-suite.js';

routeSuite('express', ({ verifier, tokens, approvals, audit, store }) => {
  const app = express();
  app.use(agentAuth(verifier));
  app.use(consentRoutes(tokens, { basePath: '/oauth', audit, store }));
  app.use(consentRoutes(tokens, { basePath: '/r', successRedirect: '/done', store }));
  app.use(express.json());
  app.use(approvalRoutes(approvals, { adminScope: ADMIN_SCOPE }));
  return app;
});
