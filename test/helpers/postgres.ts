// Test helper: a throw-away PostgreSQL cluster (initdb into a temp dir, postgres on a free
// 127.0.0.1 port, trust auth, no fsync). Returns undefined when the binaries are missing: callers use
// describe.skipIf / it.skipIf so the test is reported as skipped, never silently passed.
// As root, the cluster runs as the `postgres` user (initdb refuses root) via runuser.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** A connected `pg` client for direct queries (e.g. to dump the raw table). Call `end()` when done. */
export async function connectPg(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}
import { findBinary, freePort } from './redis.js';

export interface PostgresServer {
  /** `postgresql://postgres@127.0.0.1:<port>/postgres` */
  url: string;
  port: number;
  /** Stop the server and remove its data directory. */
  stop(): Promise<void>;
}

/** The directory holding initdb and postgres, or undefined. */
export function findPostgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'postgres')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0] !== undefined) return join(root, versions[0], 'bin');
  }
  const initdb = findBinary('initdb');
  if (initdb !== undefined && findBinary('postgres') !== undefined) return initdb.replace(/\/initdb$/, '');
  return undefined;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const runuser = findBinary('runuser');

/** True when a PostgreSQL server can be started here. */
export const hasPostgres = findPostgresBin() !== undefined && (!isRoot || runuser !== undefined);

function asPostgres(cmd: string, args: string[]): [string, string[]] {
  return isRoot ? [runuser as string, ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Start a PostgreSQL server on a free loopback port, or return undefined when it is not installed. */
export async function startPostgres(): Promise<PostgresServer | undefined> {
  const bin = findPostgresBin();
  if (bin === undefined || (isRoot && runuser === undefined)) return undefined;

  const dir = mkdtempSync(join(tmpdir(), 'agent-iam-pg-'));
  const data = join(dir, 'data');
  if (isRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(dir, uid, gid);
  }
  const [initCmd, initArgs] = asPostgres(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync', '--no-instructions']);
  execFileSync(initCmd, initArgs, { stdio: 'ignore', cwd: dir });

  const port = await freePort();
  // postgres runs under a small sh guard that stops it (fast shutdown) and removes the data
  // directory when our stdin pipe closes: on stop(), and also when this test process dies without
  // cleaning up (a killed worker), so no server is ever orphaned.
  const guard = 'dir=$1; shift; exec 3<&0; "$@" & p=$!; ( read _ <&3; kill -INT $p 2>/dev/null ) & wait $p; rm -rf "$dir"';
  const [cmd, args] = asPostgres('/bin/sh', [
    '-c', guard, 'sh', dir,
    join(bin, 'postgres'),
    '-D', data,
    '-p', String(port),
    '-c', 'listen_addresses=127.0.0.1',
    '-c', `unix_socket_directories=${dir}`,
    '-c', 'fsync=off',
    '-c', 'synchronous_commit=off',
    '-c', 'full_page_writes=off',
    '-c', 'max_connections=50',
  ]);
  const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'], cwd: dir, detached: true });
  child.stdin?.on('error', () => {}); // EPIPE when the guard is already gone
  let log = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`postgres did not start within 15 s: ${log.slice(-500)}`)), 15_000);
    child.stderr?.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`postgres exited (${code}): ${log.slice(-500)}`));
    });
  });

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      const done = exited(child);
      child.stdin?.end();
      const timer = setTimeout(() => {
        try {
          // Last resort: the whole process group (guard, runuser, postmaster).
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }, 5000);
      await done;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  // If the test process ends without stop(), do not leave a detached server behind.
  const onExit = (): void => {
    try {
      if (child.pid !== undefined && child.exitCode === null) process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  child.once('exit', () => process.removeListener('exit', onExit));

  try {
    await ready;
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: `postgresql://postgres@127.0.0.1:${port}/postgres`, port, stop };
}

/**
 * @keyv/postgres 2.x creates its pg.Pool without an 'error' listener: when the server goes away, an
 * idle pooled connection's error is re-emitted on the Pool and crashes the process (reproduced here
 * without this class). The pool takes a `Client` option; this client contains 'error' emissions,
 * while queries still reject, so agent-iam reports STORE_UNAVAILABLE and the process stays up.
 * Use it as `new KeyvPostgres({ uri, Client: ContainedPgClient })` in any test that stops the server.
 */
export class ContainedPgClient extends pg.Client {
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'error') return super.emit(event, ...args);
    try {
      return super.emit(event, ...args);
    } catch {
      return true;
    }
  }
}
