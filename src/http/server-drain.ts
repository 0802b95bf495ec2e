// Stops an HTTP server gracefully. server.close() alone closes the listening socket (new connections
// are refused) but leaves kept-alive connections open until their keep-alive timeout, also those whose
// response was in progress. Here a connection is closed as soon as it falls idle, and a request that
// arrives on an open connection during the drain is answered with `Connection: close`.
// Behind a load balancer, announce() comes first (config `drainDelay`): the listener stays open and
// every response says `Connection: close`, so the balancer's pooled connections end one by one while it
// still sends requests; idle ones are closed only by close(), once the balancer has stopped using them
// (closing an idle connection the balancer is about to reuse would race with its next request).
import type { Server, ServerResponse } from 'node:http';

export class ServerDrain {
  private draining = false;
  private closing = false;

  constructor(private readonly server: Server) {
    // Prepended: the app may send its headers synchronously, after which none can be added.
    server.prependListener('request', (_req, res: ServerResponse) => {
      if (this.draining) res.setHeader('connection', 'close');
      res.once('close', () => {
        // After the server's own 'finish' handling has detached the socket from this response.
        if (this.closing) setImmediate(() => server.closeIdleConnections());
      });
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
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), graceMs)));
    const inTime = await Promise.race([closed.then(() => true as const), expired]);
    clearTimeout(timer);
    if (!inTime) {
      this.server.closeAllConnections();
      await closed;
    }
    return inTime;
  }
}
