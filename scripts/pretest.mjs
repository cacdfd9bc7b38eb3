// Runs before `npm test`: builds the package so the packaging tests can import dist/ (ESM and CJS).
import { execSync } from 'node:child_process';
execSync('npx tsup --silent', { stdio: 'inherit' });
