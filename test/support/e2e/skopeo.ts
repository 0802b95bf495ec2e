// Runs skopeo as a client of Longshore, with nothing of the machine's container configuration:
// no signature policy (`--insecure-policy`), an empty registries.conf (no mirrors or aliases of its
// own), no auth file, and temp files in a dir the caller owns.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface SkopeoResult {
  code: number;
  /** Raw bytes: `inspect --raw` output must be compared byte for byte. */
  stdout: Buffer;
  stderr: string;
}

export class Skopeo {
  private readonly env: NodeJS.ProcessEnv;

  /** `dir` holds skopeo's temp files and the empty config files; the caller removes it. */
  constructor(dir: string) {
    const registriesConf = join(dir, 'registries.conf');
    writeFileSync(registriesConf, '');
    this.env = {
      ...process.env,
      TMPDIR: dir,
      CONTAINERS_REGISTRIES_CONF: registriesConf,
      REGISTRY_AUTH_FILE: join(dir, 'auth.json'),
    };
  }

  /** Never rejects on a non-zero exit. */
  async run(args: readonly string[], timeoutMs = 180_000): Promise<SkopeoResult> {
    try {
      const { stdout, stderr } = await run('skopeo', ['--insecure-policy', ...args], {
        encoding: 'buffer',
        timeout: timeoutMs,
        maxBuffer: 16 * 1024 * 1024,
        env: this.env,
      });
      return { code: 0, stdout, stderr: stderr.toString('utf8') };
    } catch (err) {
      const failed = err as { code?: number | string; stdout?: Buffer; stderr?: Buffer; killed?: boolean };
      if (typeof failed.code !== 'number' && !failed.killed) throw err;
      return {
        code: typeof failed.code === 'number' ? failed.code : -1,
        stdout: failed.stdout ?? Buffer.alloc(0),
        stderr: `${failed.stderr?.toString('utf8') ?? ''}${failed.killed ? `\n(skopeo ${args.join(' ')} killed after ${timeoutMs} ms)` : ''}`,
      };
    }
  }
}
