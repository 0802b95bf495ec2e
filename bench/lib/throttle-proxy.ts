// A TCP proxy that emulates a WAN link of fixed bandwidth in front of the upstream registry. All
// connections share one link: each chunk from the upstream reserves its transmission time on a
// virtual clock (start = max(now − slack, link free), end = start + bytes / rate) and is delivered at
// the end of it, while its connection is paused, so connections take turns and the total does not
// exceed the rate. The slack (a 20 ms burst) gives back time lost to timers that fire late on a busy
// machine, so the link keeps its rate instead of drifting below it. Only the upstream → client
// direction is limited; requests are small. No added latency.
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** Link time a late timer may claim back: at 50 MB/s, a 1 MB burst. */
const BURST_MS = 20;

export class ThrottleProxy {
  /** Bytes delivered upstream → client. */
  bytesDown = 0;
  /** Client connections accepted. */
  connections = 0;
  private linkFreeAt = 0;
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;

  private constructor(private readonly targetHost: string, private readonly targetPort: number, readonly bytesPerSecond: number) {
    this.server = createServer((client) => this.relay(client));
  }

  /** `target` is `host:port`. */
  static async start(target: string, bytesPerSecond: number): Promise<ThrottleProxy> {
    const colon = target.lastIndexOf(':');
    const proxy = new ThrottleProxy(target.slice(0, colon), Number(target.slice(colon + 1)), bytesPerSecond);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get host(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Milliseconds from now until a chunk of `bytes` reserved now has crossed the link (0 or more). */
  private reserve(bytes: number): number {
    const now = performance.now();
    const start = Math.max(now - BURST_MS, this.linkFreeAt);
    this.linkFreeAt = start + (bytes / this.bytesPerSecond) * 1000;
    return Math.max(0, this.linkFreeAt - now);
  }

  private relay(client: Socket): void {
    this.connections++;
    const upstream = connect(this.targetPort, this.targetHost);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      upstream.pause();
      setTimeout(() => {
        if (client.destroyed) return;
        this.bytesDown += chunk.length;
        if (client.write(chunk)) upstream.resume();
        else client.once('drain', () => upstream.resume());
      }, this.reserve(chunk.length));
    });
    // Half-close in order: the end must follow the last delayed chunk.
    let ended = false;
    upstream.on('end', () => {
      ended = true;
      setTimeout(() => client.end(), Math.max(0, this.linkFreeAt - performance.now()) + 1);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => {
      if (!ended) client.destroy();
    });
  }
}
