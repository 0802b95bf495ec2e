// A client program (docker, ctr, skopeo) run to its end against a daemon or registry of the rig. A
// non-zero exit is an answer the tests look at, not an error: it never rejects for one, nor for a
// timeout (code -1, said at the end of stderr); only when the program cannot be run at all.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CommandResult {
  code: number;
  /** Raw bytes: `skopeo inspect --raw` output must be compared byte for byte. */
  stdout: Buffer;
  stderr: string;
}

export interface CommandOptions {
  /** Arguments the rig puts before `args` (a socket, a namespace); left out of the timeout note. */
  leading?: readonly string[];
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
}

export async function runCommand(command: string, args: readonly string[], options: CommandOptions): Promise<CommandResult> {
  try {
    const { stdout, stderr } = await run(command, [...(options.leading ?? []), ...args], {
      encoding: 'buffer',
      timeout: options.timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
      env: options.env,
    });
    return { code: 0, stdout, stderr: stderr.toString('utf8') };
  } catch (err) {
    const failed = err as { code?: number | string; stdout?: Buffer; stderr?: Buffer; killed?: boolean };
    if (typeof failed.code !== 'number' && !failed.killed) throw err;
    return {
      code: typeof failed.code === 'number' ? failed.code : -1,
      stdout: failed.stdout ?? Buffer.alloc(0),
      stderr: `${failed.stderr?.toString('utf8') ?? ''}${failed.killed ? `\n(${command} ${args.join(' ')} killed after ${options.timeoutMs} ms)` : ''}`,
    };
  }
}

export interface TextCommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** runCommand with stdout as text, for the CLIs whose output is read as text (docker, ctr). */
export async function runTextCommand(command: string, args: readonly string[], options: CommandOptions): Promise<TextCommandResult> {
  const result = await runCommand(command, args, options);
  return { ...result, stdout: result.stdout.toString('utf8') };
}
