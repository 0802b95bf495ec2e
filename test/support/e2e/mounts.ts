// Mount points a daemon (dockerd, containerd) may leave under its temp dir when it is stopped or
// killed mid-operation; they must go before the dir can be removed.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Unmounts every mount point below `dir`, deepest first. */
export async function unmountUnder(dir: string): Promise<void> {
  const mountPoints = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((point): point is string => point !== undefined && (point === dir || point.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const point of mountPoints) {
    await run('umount', ['--lazy', point]).catch(() => undefined);
  }
}
