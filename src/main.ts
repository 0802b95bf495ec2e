// Process entry: load and validate the config, build the app, listen, and shut down gracefully on
// SIGTERM/SIGINT: answer /readyz with 503, keep serving for `drainDelay` (so a load balancer takes the
// node out of rotation first), refuse new connections, let responses and downloads in progress finish
// within `shutdownGrace`, close SQLite (which checkpoints and removes its WAL file), exit 0.
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createLongshore } from './app.js';
import { localOrigin, parseListen } from './config/listen.js';
import { loadConfig } from './config/load.js';
import { ConfigError, isLongshoreError } from './errors.js';
import { ServerDrain } from './http/server-drain.js';
import { applyServerLimits } from './http/server-limits.js';
import { createLogger, jsonDestination, prettyDestination } from './observability/logger.js';
import { CertificateReloader, certificateFingerprint, describeCertificate, readKeyPair, type KeyPair } from './tls/certificates.js';
import { keepParserOnBaselineCompiler } from './upstream/parser-compiler.js';

async function main(): Promise<void> {
  keepParserOnBaselineCompiler(); // process-wide, before the first upstream request
  let config;
  let keyPair: KeyPair | undefined;
  try {
    config = loadConfig();
    keyPair = config.tls ? readKeyPair(config.tls) : undefined;
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`longshore: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel,
    config.logFormat === 'pretty' ? prettyDestination({ colorize: process.stdout.isTTY === true }) : jsonDestination(config.logFlushInterval));
  const longshore = await createLongshore(config, log).catch((err: unknown) => {
    // auth.htpasswd or auth.signingKeyFile, read while the services are built; or another process
    // owns the data directory
    if (!(err instanceof ConfigError) && !isLongshoreError(err, 'LS_DATA_DIR_LOCKED') && !isLongshoreError(err, 'LS_DATABASE_TOO_NEW')) throw err;
    console.error(`longshore: ${(err as Error).message}`);
    process.exit(2);
  });
  const httpsServer = keyPair ? createHttpsServer(keyPair, longshore.handler) : undefined;
  const server = httpsServer ?? createServer(longshore.handler);
  // tls.httpListen: plain HTTP beside HTTPS, e.g. for clients on the same host.
  const plain = config.tls?.httpListen ? createServer(longshore.handler) : undefined;
  const httpLog = log.child({ component: 'http' });
  for (const s of [server, ...(plain ? [plain] : [])]) applyServerLimits(s, config.server, httpLog);
  const drains = [server, ...(plain ? [plain] : [])].map((s) => new ServerDrain(s));
  const { host, port } = parseListen(config.listen);
  server.listen(port, host, () => {
    const address = server.address() as AddressInfo;
    log.info({ address: address.address, port: address.port, tls: keyPair !== undefined, dataDir: config.dataDir, upstreams: Object.keys(config.upstreams) }, 'listening');
    if (plain) return;
    adminListen = `${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`;
    announce(adminListen, keyPair ? 'https' : 'http', keyPair && certificateFingerprint(keyPair.cert));
  });
  // Admin commands find the running server through the data directory's lock file: over HTTPS (when
  // there is no plain listener), they check the certificate by the fingerprint recorded with the URL.
  let adminListen: string | undefined;
  const announce = (listen: string, scheme: 'http' | 'https', certificate?: string) => {
    longshore.announce(localOrigin(listen, scheme), certificate).catch((err: unknown) => log.warn({ err }, 'could not record the admin URL in the lock file'));
  };
  if (plain) {
    const plainAddress = parseListen(config.tls!.httpListen!);
    plain.listen(plainAddress.port, plainAddress.host, () => {
      const address = plain.address() as AddressInfo;
      log.info({ address: address.address, port: address.port }, 'listening without tls');
      announce(`${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`, 'http');
    });
  }
  for (const s of [server, ...(plain ? [plain] : [])]) {
    s.on('error', (err) => {
      log.fatal({ err }, 'server error');
      process.exit(1);
    });
  }
  if (httpsServer && keyPair) {
    const tlsLog = log.child({ component: 'tls' });
    tlsLog.info(describeCertificate(keyPair.cert), 'tls certificate loaded');
    const reloader = new CertificateReloader(httpsServer, config.tls!, tlsLog, (pair) => {
      if (adminListen && !plain) announce(adminListen, 'https', certificateFingerprint(pair.cert));
    });
    process.on('SIGHUP', () => void reloader.reload());
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal; exiting without waiting');
      process.exit(1);
    }
    stopping = true;
    // /readyz answers 503 from here on; with a drainDelay the node keeps serving until the load
    // balancer's health check has taken it out of rotation, and only then refuses connections.
    longshore.startDraining();
    for (const d of drains) d.announce();
    const refuseConnections = () => Promise.all(drains.map((d) => d.close(config.shutdownGrace))).then((done) => done.every(Boolean));
    // Without a drainDelay the listeners close before the log line: whoever reads 'shutting down' (an
    // operator, a test) finds new connections refused already.
    let connections = config.drainDelay > 0 ? undefined : refuseConnections();
    log.info({ signal, downloads: longshore.registry.activeFills, graceMs: config.shutdownGrace, drainDelayMs: config.drainDelay }, 'shutting down');
    if (config.drainDelay > 0) await new Promise((resolve) => setTimeout(resolve, config.drainDelay));
    const deadline = Date.now() + config.shutdownGrace;
    if (!connections) {
      connections = refuseConnections();
      log.info({ downloads: longshore.registry.activeFills }, 'drain delay over; refusing new connections');
    }
    try {
      if (!(await connections)) log.warn('shutdown grace ran out; open connections were cut');
      await longshore.close(Math.max(0, deadline - Date.now()));
    } catch (err) {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    }
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

await main();
