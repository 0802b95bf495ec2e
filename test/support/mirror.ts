// Runs a Longshore instance in-process on 127.0.0.1:0 with a fresh data dir, logs captured in memory; the
// server has the limits of config `server`, as main.ts gives them.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLongshore, type Longshore } from '../../src/app.js';
import { parseConfig } from '../../src/config/load.js';
import { applyServerLimits } from '../../src/http/server-limits.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createLogger } from '../../src/observability/logger.js';
import { FakeRegistry, type FakeRegistryOptions } from './fake-registry.js';

export interface TestMirror {
  url: string;
  dataDir: string;
  longshore: Longshore;
  server: Server;
  /** Every log line written so far, parsed. */
  logs(): Array<Record<string, unknown>>;
  rawLogs(): string;
  /** Stops the server; `keepData` leaves the data dir for a restart. */
  close(options?: { keepData?: boolean }): Promise<void>;
}

export async function startMirror(config: Partial<ConfigInput> & Pick<ConfigInput, 'upstreams'>, dataDir?: string): Promise<TestMirror> {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'longshore-test-')));
  let raw = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      raw += chunk.toString();
      cb();
    },
  });
  // No free-space floor unless a test sets one: a test machine's disk may be nearly full, and a mirror
  // under its floor passes blobs through uncached, which is not what most tests are about.
  const parsed = parseConfig({ listen: '127.0.0.1:0', logLevel: 'debug', ...config, cache: { minFreeSpace: 0, ...config.cache }, dataDir: dir });
  const log = createLogger(parsed.logLevel, sink);
  const longshore = await createLongshore(parsed, log);
  const server: Server = createServer(longshore.handler);
  applyServerLimits(server, parsed.server, log);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    dataDir: dir,
    longshore,
    server,
    rawLogs: () => raw,
    logs: () => raw.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>),
    async close(options = {}) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await longshore.close(5_000);
      if (!options.keepData) await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface MirrorOverFake {
  fake: FakeRegistry;
  mirror: TestMirror;
}

/**
 * The set-up most integration suites share: a fresh FakeRegistry and a mirror whose docker.io upstream
 * it is. `config` (an object, or a function of the fake for URLs) is laid over that; its `upstreams`
 * replace the default ones. Stop both with stopMirrorOverFake.
 */
export async function startMirrorOverFake(
  config: Partial<ConfigInput> | ((fake: FakeRegistry) => Partial<ConfigInput>) = {},
  fakeOptions: FakeRegistryOptions = {},
): Promise<MirrorOverFake> {
  const fake = await FakeRegistry.start(fakeOptions);
  const extra = typeof config === 'function' ? config(fake) : config;
  try {
    const mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl } }, ...extra });
    return { fake, mirror };
  } catch (err) {
    await fake.close();
    throw err;
  }
}

/** Closes the mirror (removing its data dir), then the fake. */
export async function stopMirrorOverFake({ fake, mirror }: MirrorOverFake): Promise<void> {
  await mirror.close();
  await fake.close();
}
