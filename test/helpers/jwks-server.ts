/**
 * A real JWKS HTTP server on 127.0.0.1 for tests: keys can be rotated, and the server can go
 * down, answer slowly, hang, or send an oversized or invalid body.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';

export type JwksMode = 'ok' | 'down' | 'slow' | 'hang' | 'huge' | 'garbage' | 'redirect';

export interface JwksServer {
  /** `http://127.0.0.1:PORT/jwks` */
  readonly url: string;
  /** `http://127.0.0.1:PORT` */
  readonly origin: string;
  /** Keys served now. */
  keys: JWK[];
  /** How the server answers. */
  mode: JwksMode;
  /** Delay of the `slow` mode, in ms. */
  delayMs: number;
  /** Number of requests received. */
  requests: number;
  /** Requests held open by the `hang` mode, not answered yet, whose client is still waiting. */
  readonly held: number;
  /** Requests held by the `hang` mode whose client went away before an answer (it gave up). */
  readonly abandoned: number;
  /** Answer every held request now, with the keys served now. */
  release(): void;
  /** Drop every held request unanswered (the client sees its connection fail). */
  drop(): void;
  close(): Promise<void>;
}

export async function startJwksServer(keys: JWK[] = []): Promise<JwksServer> {
  const hanging = new Set<import('node:http').ServerResponse>();
  const state = {
    keys,
    mode: 'ok' as JwksMode,
    delayMs: 300,
    requests: 0,
    abandoned: 0,
  };
  const sendKeys = (res: import('node:http').ServerResponse): void => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: state.keys }));
  };
  const server: Server = createServer((req, res) => {
    state.requests++;
    if (req.url === '/elsewhere') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: state.keys }));
      return;
    }
    if (req.url !== '/jwks') {
      res.writeHead(404).end();
      return;
    }
    const send = () => sendKeys(res);
    switch (state.mode) {
      case 'ok':
        send();
        return;
      case 'down':
        res.writeHead(503, { 'content-type': 'text/plain' }).end('down');
        return;
      case 'slow':
        setTimeout(send, state.delayMs);
        return;
      case 'hang':
        hanging.add(res);
        res.on('close', () => {
          if (hanging.delete(res)) state.abandoned++;
        });
        return;
      case 'huge': {
        // No content-length: the client must count bytes itself.
        res.writeHead(200, { 'content-type': 'application/json' });
        const pad = 'x'.repeat(64 * 1024);
        res.write(`{"keys":${JSON.stringify(state.keys)},"pad":"`);
        for (let i = 0; i < 32; i++) res.write(pad);
        res.end('"}');
        return;
      }
      case 'redirect':
        res.writeHead(302, { location: '/elsewhere' }).end();
        return;
      case 'garbage':
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys": not json');
        return;
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    url: `${origin}/jwks`,
    origin,
    get keys() {
      return state.keys;
    },
    set keys(k: JWK[]) {
      state.keys = k;
    },
    get mode() {
      return state.mode;
    },
    set mode(m: JwksMode) {
      state.mode = m;
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(d: number) {
      state.delayMs = d;
    },
    get requests() {
      return state.requests;
    },
    set requests(n: number) {
      state.requests = n;
    },
    get held() {
      return hanging.size;
    },
    get abandoned() {
      return state.abandoned;
    },
    release() {
      const waiting = [...hanging];
      hanging.clear();
      for (const res of waiting) sendKeys(res);
    },
    drop() {
      const waiting = [...hanging];
      hanging.clear();
      for (const res of waiting) res.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        const waiting = [...hanging];
        hanging.clear();
        for (const res of waiting) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * JWKS servers started by a test file and closed after each test: call `closeAll` in `afterEach`.
 */
export function jwksServerPool(): { start(keys: JWK[]): Promise<JwksServer>; closeAll(): Promise<void> } {
  let servers: JwksServer[] = [];
  return {
    async start(keys) {
      const s = await startJwksServer(keys);
      servers.push(s);
      return s;
    },
    async closeAll() {
      const open = servers;
      servers = [];
      await Promise.all(open.map((s) => s.close()));
    },
  };
}

/**
 * A fetch for `createVerifier({ fetch })` that counts the fetches that have ended: answered with the
 * whole body read, refused, or given up (timeout). The body is read here, so once `ended` moves, what
 * the verifier does with the answer needs no more I/O: a check from a timer or `vi.waitFor` that
 * sees the new count sees its outcome too. An opaque redirect is passed on as it is.
 */
export function trackedFetch(): { fetch: typeof fetch; readonly ended: number } {
  let ended = 0;
  const tracked: typeof fetch = async (input, init) => {
    try {
      const res = await fetch(input, init);
      if (res.type === 'opaqueredirect' || res.status === 0) return res;
      const body = await res.arrayBuffer();
      return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
    } finally {
      ended++;
    }
  };
  return {
    fetch: tracked,
    get ended() {
      return ended;
    },
  };
}
