#!/usr/bin/env node
// Admin commands, sharing the server's config loader and modules:
//   longshore du [--top N]                   cache size, object counts, top repositories by size
//   longshore gc [--to SIZE] [--dry-run]     reconcile the store (orphans), release local blobs no manifest
//                                            references, then evict cached content down to SIZE
//                                            (default: the configured low watermark)
//   longshore verify [--quarantine]          re-hash every stored file; report, and with --quarantine move
//                                            mismatching files to <dataDir>/quarantine and forget them
//   longshore health                         exit 0 if the server of this config answers /healthz (the
//                                            container image's HEALTHCHECK)
//   longshore warm [--platform P,…|all] [--concurrency N] [--with-referrers] [--file LIST] REF…
//                                            fetch images (and their signatures, attestations) into the cache
//   longshore export --output FILE [--platform …] [--since OLD_BUNDLE…] [--with-referrers] [--file LIST] REF…
//                                            write images as an OCI image layout tarball (cli/airgap.ts)
//   longshore import FILE…                   store the images of bundles, verified, as cached content
// Every command takes --config PATH like the server. Output is JSON with --json, else plain text.
//
// gc, verify --quarantine, warm, export and import write to the data directory: when a server holds it
// (storage/data-lock.ts) they send the work to that server's admin API, else they take its lock and run
// the same jobs on the same core (core.ts) alone. du and verify without --quarantine only read. What
// works on the directory itself lives in cli/maintenance.ts, loaded only for those commands.
import { localOrigin } from '../config/listen.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { parseSize } from '../config/units.js';
import { ConfigError, isLongshoreError } from '../errors.js';
import type { AdminClient } from './admin-client.js';
import { option } from './args.js';
import { findOwner } from './owner.js';

const USAGE = 'usage: longshore <du|gc|verify|health|warm|export|import> [--config PATH] [--json] [du: --top N] [gc: --to SIZE --dry-run] [verify: --quarantine] '
  + '[warm: --platform OS/ARCH,…|all --concurrency N --with-referrers --file LIST REF…] [export: --output FILE --platform … --since OLD_BUNDLE… --with-referrers --file LIST REF…] [import: FILE…]';
const COMMANDS = ['du', 'gc', 'verify', 'health', 'warm', 'export', 'import'];
/** How long `health` waits for an answer (Docker's HEALTHCHECK allows 3 s by default here). */
const HEALTH_TIMEOUT_MS = 2_500;

export async function run(argv: readonly string[], print: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  const [command, ...args] = argv;
  if (!command || !COMMANDS.includes(command)) {
    print(USAGE);
    return 2;
  }
  const config = loadConfig({ argv: args });
  if (command === 'health') return health(config, print);
  const json = args.includes('--json');
  if (command === 'warm' || command === 'export' || command === 'import') return (await import('./airgap.js')).airgap(command, args, config, print);
  const to = command === 'gc' ? sizeOption(args) : undefined;
  // Writers go through the directory's owner: the running server, or this command holding the lock.
  if (command === 'gc' || (command === 'verify' && args.includes('--quarantine'))) {
    const owner = await findOwner(config);
    if (owner.kind === 'server') return remoteMaintenance(command as 'gc' | 'verify', args, owner.client, json, print);
    return (await import('./maintenance.js')).aloneMaintenance(command as 'gc' | 'verify', args, to, config, json, print);
  }
  return (await import('./maintenance.js')).inspect(command as 'du' | 'verify', args, config, json, print);
}

/** gc's --to SIZE, checked before any work is asked for. */
function sizeOption(args: readonly string[]): number | undefined {
  const to = option(args, '--to');
  if (to === undefined) return undefined;
  const size = parseSize(to);
  if (size === undefined) throw new ConfigError(`--to: expected a size such as "10GiB", got ${JSON.stringify(to)}`);
  return size;
}

/** gc and verify sent to the running server: the same reports, printed the same way. */
async function remoteMaintenance(command: 'gc' | 'verify', args: readonly string[], client: AdminClient, json: boolean, print: (line: string) => void): Promise<number> {
  const { printGc, printVerify } = await import('./maintenance.js');
  try {
    if (command === 'gc') {
      const report = await client.job('gc', { to: option(args, '--to') ?? null, dryRun: args.includes('--dry-run') }, () => undefined);
      delete report.event;
      printGc(report, args.includes('--dry-run'), json, print);
      return 0;
    }
    const report = await client.job('verify', { quarantine: true }, () => undefined) as unknown as { checked: number; corrupt: string[]; quarantined: number };
    return printVerify({ checked: report.checked, corrupt: report.corrupt, quarantined: report.quarantined }, true, json, print);
  } finally {
    await client.close();
  }
}

/**
 * Asks the server that `config` describes for /healthz, from this host: plain HTTP on `listen`, or on
 * `tls.httpListen` when TLS has one, else HTTPS without checking the certificate (it names the host
 * clients use, and this asks the server itself over loopback).
 */
async function health(config: Config, print: (line: string) => void): Promise<number> {
  const plainListen = config.tls ? config.tls.httpListen : config.listen;
  const url = `${plainListen ? localOrigin(plainListen, 'http') : localOrigin(config.listen, 'https')}/healthz`;
  const { Agent, request } = await import('undici');
  const dispatcher = plainListen ? undefined : new Agent({ connect: { rejectUnauthorized: false } });
  try {
    const res = await request(url, { dispatcher, signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS) });
    await res.body.dump();
    print(`${url}: ${res.statusCode}`);
    return res.statusCode === 200 ? 0 : 1;
  } catch (err) {
    print(`${url}: ${(err as Error).message}`);
    return 1;
  } finally {
    await dispatcher?.close();
  }
}

// Run only as the process entry, not when imported by tests.
if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/cli/main.js') || process.argv[1]?.endsWith('/cli/main.ts')) {
  run(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      // A typed error is the answer (a corrupt bundle, a locked directory): its message, not a stack.
      const known = err instanceof ConfigError || (isLongshoreError(err) && err.code !== 'LS_INTERNAL');
      console.error(`longshore: ${known ? (err as Error).message : (err as Error).stack ?? String(err)}`);
      if (isLongshoreError(err) && process.argv.includes('--json')) {
        process.stdout.write(`${JSON.stringify({ event: 'error', code: err.code, message: err.message, ...(err.detail ? { detail: err.detail } : {}) })}\n`);
      }
      process.exit(err instanceof ConfigError || isLongshoreError(err, 'LS_DATA_DIR_LOCKED') ? 2 : 1);
    },
  );
}
