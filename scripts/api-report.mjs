#!/usr/bin/env node
/**
 * The public API report: for every entry point in package.json `exports`, API Extractor reads the
 * declarations tsc emits for `src` (with `@internal` stripped) and writes `api/<entry>.api.md`.
 * Everything not in a report is internal.
 *
 *   node scripts/api-report.mjs           CI: fails when the surface differs from the checked-in report
 *   node scripts/api-report.mjs --update  rewrites the reports (commit them with the change that moved the surface)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Extractor, ExtractorConfig } from '@microsoft/api-extractor';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const update = process.argv.includes('--update');
const out = join(root, '.api');
rmSync(out, { recursive: true, force: true });

const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.api.json')], { cwd: root, encoding: 'utf8' });
if (r.status !== 0) {
  console.error(r.stdout + r.stderr);
  process.exit(1);
}

// Entry name -> source file, from the path aliases that map each public subpath to its source.
const tsconfig = JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8'));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const entries = [];
for (const subpath of Object.keys(pkg.exports)) {
  if (subpath === './package.json') continue;
  const name = subpath === '.' ? 'agent-iam' : `agent-iam/${subpath.slice(2)}`;
  const source = tsconfig.compilerOptions.paths[name]?.[0];
  if (!source) {
    console.error(`api-report: package.json exports ${subpath} but tsconfig.json has no path for ${name}`);
    process.exit(1);
  }
  const dts = join(out, 'types', source.replace(/^\.\/src\//, '').replace(/\.ts$/, '.d.ts'));
  entries.push({ name, report: subpath === '.' ? 'index' : subpath.slice(2), dts });
}

mkdirSync(join(root, 'api'), { recursive: true });
let changed = 0;
let failed = 0;
for (const e of entries) {
  const config = ExtractorConfig.prepare({
    configObject: {
      projectFolder: root,
      mainEntryPointFilePath: e.dts,
      compiler: { tsconfigFilePath: join(root, 'tsconfig.api.json') },
      apiReport: {
        enabled: true,
        reportFileName: `${e.report}.api.md`,
        reportFolder: join(root, 'api'),
        reportTempFolder: join(out, 'report'),
      },
      docModel: { enabled: false },
      dtsRollup: { enabled: false },
      tsdocMetadata: { enabled: false },
      messages: {
        compilerMessageReporting: { default: { logLevel: 'warning' } },
        extractorMessageReporting: {
          default: { logLevel: 'warning' },
          // Forgotten exports are named in the report instead of failing the run.
          'ae-forgotten-export': { logLevel: 'none', addToApiReportFile: true },
          'ae-missing-release-tag': { logLevel: 'none' },
          'ae-internal-missing-underscore': { logLevel: 'none' },
          // @langchain/protocol (under @langchain/langgraph) publishes its types as a .ts file; that is
          // the framework's packaging, not part of our surface.
          'ae-wrong-input-file-type': { logLevel: 'none' },
          // Undocumented members are marked "(undocumented)" in place (no file:line footer, so moving code
          // between files does not change the report).
          'ae-undocumented': { logLevel: 'none', addToApiReportFile: false },
        },
        tsdocMessageReporting: { default: { logLevel: 'none' } },
      },
    },
    configObjectFullPath: join(root, 'api', 'api-extractor.json'),
    packageJsonFullPath: join(root, 'package.json'),
  });
  const result = Extractor.invoke(config, { localBuild: update, showVerboseMessages: false, messageCallback: (m) => {
    if (m.logLevel === 'warning' || m.logLevel === 'error') {
      console.error(`${e.name}: ${m.text}${m.sourceFilePath ? ` (${m.sourceFilePath.replace(root + '/', '')}:${m.sourceFileLine})` : ''}`);
    }
    m.handled = true;
  } });
  if (result.apiReportChanged) changed++;
  if (!result.succeeded) failed++;
}
rmSync(out, { recursive: true, force: true });
if (!update && (changed || failed)) {
  console.error(`api-report: ${changed} report(s) differ from api/*.api.md${failed ? `, ${failed} failed` : ''}. If the change to the public surface is intended, run \`npm run api:update\` and commit api/.`);
  process.exit(1);
}
console.log(update ? `api-report: ${entries.length} reports written to api/.` : `api-report: ${entries.length} entry points match api/*.api.md.`);
