// Runs skopeo as a client of Longshore, with nothing of the machine's container configuration:
// no signature policy (`--insecure-policy`), an empty registries.conf (no mirrors or aliases of its
// own), no auth file, and temp files in a dir the caller owns.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand, type CommandResult } from './command.js';

export type SkopeoResult = CommandResult;

export class Skopeo {
  private readonly env: NodeJS.ProcessEnv;
  private destinations = 0;

  /** `dir` holds skopeo's temp files, the empty config files and copy destinations; the caller removes it. */
  constructor(private readonly dir: string) {
    const registriesConf = join(dir, 'registries.conf');
    writeFileSync(registriesConf, '');
    this.env = {
      ...process.env,
      TMPDIR: dir,
      CONTAINERS_REGISTRIES_CONF: registriesConf,
      REGISTRY_AUTH_FILE: join(dir, 'auth.json'),
    };
  }

  /** A new path in the client's dir for a `dir:` or `oci:` copy to write to (skopeo creates it). */
  newDestination(): string {
    return join(this.dir, `copy-${++this.destinations}`);
  }

  /** Never rejects on a non-zero exit. */
  run(args: readonly string[], timeoutMs = 180_000): Promise<SkopeoResult> {
    return runCommand('skopeo', args, { leading: ['--insecure-policy'], timeoutMs, env: this.env });
  }

  /**
   * run(), then asserts that skopeo succeeded and returns its output. `settle` is awaited before the
   * check (e.g. until the server has logged every request skopeo made); `explain` adds what the rig saw
   * to a failure message.
   */
  async runOk(args: readonly string[], check: { explain: () => string; settle?: () => Promise<void> }): Promise<Buffer> {
    const result = await this.run(args);
    await check.settle?.();
    assert.equal(result.code, 0, `skopeo ${args.join(' ')} failed: ${result.stderr.trim()}\n${check.explain()}`);
    return result.stdout;
  }
}
