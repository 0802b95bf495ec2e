// A bystander HTTP server that counts TCP connections and records requests: the loopback service, or the
// token realm, that a hostile upstream points the mirror at. Tests assert it was never reached.
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface CountingServer {
  url: string;
  port: number;
  /** TCP connections accepted. */
  connections: number;
  requests: Array<{ method: string; path: string; headers: IncomingHttpHeaders }>;
  close(): Promise<void>;
}

export async function startCountingServer(
  host: string,
  port = 0,
  handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end('internal secret'),
): Promise<CountingServer> {
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    state.requests.push({ method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers });
    handler(req, res);
  });
  server.on('connection', (socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const bound = (server.address() as AddressInfo).port;
  const state: CountingServer = {
    url: `http://${host}:${bound}`,
    port: bound,
    connections: 0,
    requests: [],
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return state;
}
