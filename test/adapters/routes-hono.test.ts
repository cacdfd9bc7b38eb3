import { getRequestListener } from '@hono/node-server';
import { Hono } from 'hono';
import { agentAuth, approvalRoutes, consentRoutes } from '../../src/adapters/hono.js';
import { ADMIN_SCOPE, routeSuite } from '../app/routes-suite.js';

routeSuite('hono', ({ verifier, tokens, approvals, audit, store }) => {
  const app = new Hono();
  app.use('*', agentAuth(verifier));
  app.use('/oauth/*', consentRoutes(tokens, { basePath: '/oauth', audit, store }));
  app.use('/r/*', consentRoutes(tokens, { basePath: '/r', successRedirect: '/done', store }));
  app.use('*', approvalRoutes(approvals, { adminScope: ADMIN_SCOPE }));
  return getRequestListener(app.fetch);
});
