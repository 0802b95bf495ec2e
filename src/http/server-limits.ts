// Timeouts and a connection cap for every listener (config `server`), against clients that hold the
// mirror's sockets without making progress. Node 20 offers, per server:
//   headersTimeout   the request line and headers must be complete this long after the request's first
//                    byte (for a new connection, after the connect); 408 and close. Against slowloris.
//   requestTimeout   the same for the whole request, body included. It cannot tell a slow upload from a
//                    stalled one (Node's default 300 s cut large pushes with 408), so it is off by default.
//   timeout          socket inactivity (socket.setTimeout), in either direction and in every phase. Set
//                    server-wide it would also cut a client that waits, silent, while the mirror works on
//                    its answer (an upstream fill, hashing a pushed blob), so it is applied here only while
//                    a request body is being received: "no byte from the client for idleTimeout".
//   keepAliveTimeout how long an idle kept-alive connection waits for its next request.
//   maxConnections   connections beyond it are closed as soon as they are accepted ('drop').
// Node checks headersTimeout and requestTimeout on a timer (connectionsCheckingInterval, 30 s by
// default), so a deadline may be overshot by up to one interval: the interval is derived from
// headersTimeout below.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config/schema.js';

/** Dropped connections are logged at most this often (an attack must not flood the log). */
const DROP_LOG_INTERVAL_MS = 60_000;

export function applyServerLimits(server: Server | HttpsServer, limits: ServerConfig, log?: Logger): void {
  server.headersTimeout = limits.headersTimeout;
  server.requestTimeout = limits.requestTimeout;
  server.keepAliveTimeout = limits.keepAliveTimeout;
  server.maxConnections = limits.maxConnections;
  server.timeout = 0;
  // A createServer option that @types/node declares only as such; Node reads the property when the server
  // starts listening. A quarter of headersTimeout overshoots it by at most 25 %.
  const deadline = limits.requestTimeout > 0 ? Math.min(limits.headersTimeout, limits.requestTimeout) : limits.headersTimeout;
  (server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval = Math.min(1_000, Math.max(25, Math.floor(deadline / 4)));

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (!hasBody || req.complete) return;
    const socket = req.socket;
    socket.setTimeout(limits.idleTimeout);
    req.once('end', () => {
      // After the response finished, Node has set the keep-alive timeout (or is closing): leave it.
      if (!res.writableFinished) socket.setTimeout(0);
    });
  });

  if (log) {
    let dropped = 0;
    let lastLog = 0;
    server.on('drop', () => {
      dropped++;
      const now = Date.now();
      if (now - lastLog < DROP_LOG_INTERVAL_MS) return;
      log.warn({ dropped, maxConnections: limits.maxConnections }, 'connections refused at server.maxConnections');
      lastLog = now;
      dropped = 0;
    });
  }
}
