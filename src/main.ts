// Process entry: load and validate the config, build the app, listen, and shut down gracefully on
// SIGTERM/SIGINT (stop accepting, let downloads in progress finish within a bound, close SQLite).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLongshore } from './app.js';
import { loadConfig } from './config/load.js';
import { ConfigError } from './errors.js';
import { createLogger } from './observability/logger.js';

/** How long shutdown waits for downloads in progress before closing anyway. */
const SHUTDOWN_GRACE_MS = 30_000;

export function parseListen(listen: string): { host: string | undefined; port: number } {
  const match = /^(?:\[?([^\]]*?)\]?:)?(\d+)$/.exec(listen);
  if (!match) throw new ConfigError(`listen: expected "host:port", got ${JSON.stringify(listen)}`);
  return { host: match[1] || undefined, port: Number(match[2]) };
}

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`longshore: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  const longshore = await createLongshore(config, log);
  const server = createServer({ keepAliveTimeout: 65_000 }, longshore.app);
  const { host, port } = parseListen(config.listen);
  server.listen(port, host, () => {
    const address = server.address() as AddressInfo;
    log.info({ address: address.address, port: address.port, dataDir: config.dataDir, upstreams: Object.keys(config.upstreams) }, 'listening');
  });
  server.on('error', (err) => {
    log.fatal({ err }, 'server error');
    process.exit(1);
  });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, downloads: longshore.registry.activeFills }, 'shutting down');
    server.close();
    server.closeIdleConnections();
    void longshore.close(SHUTDOWN_GRACE_MS).then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

await main();
