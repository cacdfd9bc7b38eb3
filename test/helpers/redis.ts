// Test helper: a throw-away redis-server on a free 127.0.0.1 port (no persistence).
// Returns undefined when the binary is missing: callers use describe.skipIf / it.skipIf so the test
// is reported as skipped, never silently passed.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { delimiter, join } from 'node:path';

export interface RedisServer {
  /** `redis://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** Stop the server (nothing is persisted); resolves when the process has exited. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would; resolves when the process has exited. */
  kill(): Promise<void>;
  /** Start again on the same port (after kill or stop); resolves when it accepts connections. */
  restart(): Promise<void>;
}

/** Path of an executable on PATH (or the usual system dirs), or undefined. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** True when redis-server is installed (for `describe.skipIf(!hasRedis)`). */
export const hasRedis = findBinary('redis-server') !== undefined;

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** True when a redis-server on 127.0.0.1:`port` answers PING (ready, not merely listening). */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(200, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, '127.0.0.1', () => {
      // A PING answered with +PONG means the server is ready, not merely listening.
      socket.write('PING\r\n');
      socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
    });
  });
}

/** Close the guard's stdin: it SIGKILLs redis-server, which ends the guard. */
async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = exited(child);
  child.stdin?.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await done;
  clearTimeout(timer);
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Start redis-server on a free loopback port, or return undefined when it is not installed. */
export async function startRedis(): Promise<RedisServer | undefined> {
  const bin = findBinary('redis-server');
  if (bin === undefined) return undefined;

  let port = 0;
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    // redis-server runs under a small sh guard that SIGKILLs it when our stdin pipe closes: on
    // kill()/stop(), and also when this test process dies without cleaning up (a killed worker),
    // so no server is ever orphaned.
    const proc = spawn(
      '/bin/sh',
      [
        '-c',
        'exec 3<&0; "$0" "$@" & p=$!; ( read _ <&3; kill -9 $p 2>/dev/null ) & wait $p',
        bin,
        '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', '--loglevel', 'warning',
      ],
      { stdio: ['pipe', 'ignore', 'pipe'] },
    );
    child = proc;
    proc.stdin?.on('error', () => {}); // EPIPE when the guard is already gone
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode}): ${stderr.slice(0, 500)}`);
      if (await canConnect(port)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    await terminate(proc);
    throw new Error('redis-server did not start within 5 s');
  };

  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (e) {
      if (attempt >= 2) throw e;
    }
  }

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      if (child !== undefined) await terminate(child);
    },
    async kill() {
      if (child !== undefined) await terminate(child);
    },
    async restart() {
      if (child !== undefined) await terminate(child);
      await launch();
    },
  };
}
