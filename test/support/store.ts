// What is in a data directory's content store, read straight from disk.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Every file under blobs/sha256/, as digest → size. */
export async function filesOnDisk(dataDir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const root = join(dataDir, 'blobs', 'sha256');
  for (const prefix of await readdir(root).catch((): string[] => [])) {
    for (const name of await readdir(join(root, prefix))) out.set(`sha256:${name}`, (await stat(join(root, prefix, name))).size);
  }
  return out;
}
