/**
 * A throw-away redis-server on a free 127.0.0.1 port that persists every write (AOF, fsync always)
 * into a temp dir, so that SIGKILL + restart keeps what was acknowledged: what a real deployment
 * with persistence sees after a crash. Undefined when redis-server is not installed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canConnect as ping, findBinary, freePort } from '../helpers/redis.js';

export interface PersistentRedis {
  url: string;
  /** SIGKILL, as a crash; resolves when the process is gone. */
  kill(): Promise<void>;
  /** Start again on the same port and data dir; resolves when it answers PING. */
  restart(): Promise<void>;
  /** Stop and delete the data dir. */
  stop(): Promise<void>;
}

export async function startPersistentRedis(): Promise<PersistentRedis | undefined> {
  const bin = findBinary('redis-server');
  if (bin === undefined) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'agent-iam-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    // Guarded like test/helpers/redis.ts: the server dies when our stdin pipe closes.
    const proc = spawn(
      '/bin/sh',
      [
        '-c',
        'exec 3<&0; "$0" "$@" & p=$!; ( read _ <&3; kill -9 $p 2>/dev/null ) & wait $p',
        bin,
        '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes',
        '--appendfsync', 'always', '--protected-mode', 'yes', '--loglevel', 'warning',
      ],
      { stdio: ['pipe', 'ignore', 'ignore'] },
    );
    proc.stdin?.on('error', () => {});
    child = proc;
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error('redis-server exited');
      if (await ping(port)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error('redis-server did not start');
  };

  const terminate = async (): Promise<void> => {
    const c = child;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.stdin?.end();
    const timer = setTimeout(() => c.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
    // the guard has exited; wait until the port no longer answers (redis itself is gone)
    for (let i = 0; i < 100 && (await ping(port)); i++) await new Promise((r) => setTimeout(r, 20));
  };

  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    kill: terminate,
    async restart() {
      await terminate();
      await launch();
    },
    async stop() {
      await terminate();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
