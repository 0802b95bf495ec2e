// Stops an HTTP server gracefully. server.close() alone closes the listening socket (new connections
// are refused) but leaves kept-alive connections open until their keep-alive timeout, also those whose
// response was in progress. Here a connection is closed once it falls idle (within 50 ms), and a request that
// arrives on an open connection during the drain is answered with `Connection: close`.
// Behind a load balancer, announce() comes first (config `drainDelay`): the listener stays open and
// every response says `Connection: close`, so the balancer's pooled connections end one by one while it
// still sends requests; idle ones are closed only by close(), once the balancer has stopped using them
// (closing an idle connection the balancer is about to reuse would race with its next request).
import type { Server, ServerResponse } from 'node:http';

/** While closing, idle connections are closed this often. */
const SWEEP_MS = 50;

export class ServerDrain {
  private draining = false;

  constructor(private readonly server: Server) {
    // Prepended: the app may send its headers synchronously, after which none can be added.
    server.prependListener('request', (_req, res: ServerResponse) => {
      if (this.draining) res.setHeader('connection', 'close');
    });
  }

  /** Keeps accepting connections, but asks every client to close its connection after the response. */
  announce(): void {
    this.draining = true;
  }

  /**
   * Refuses new connections at once, then waits for responses in progress. Resolves true when every
   * connection has closed, false when `graceMs` ran out first and the remaining ones were cut.
   */
  async close(graceMs: number): Promise<boolean> {
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    // A response in progress whose headers went out before the drain keeps its connection alive: it falls
    // idle when the response ends, and is closed at the next sweep. (A listener per response would do it
    // at once, but every request would pay for it, also when no shutdown ever comes.)
    const sweep = setInterval(() => this.server.closeIdleConnections(), SWEEP_MS);
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), graceMs)));
    const inTime = await Promise.race([closed.then(() => true as const), expired]);
    clearTimeout(timer);
    clearInterval(sweep);
    if (!inTime) {
      this.server.closeAllConnections();
      await closed;
    }
    return inTime;
  }
}
