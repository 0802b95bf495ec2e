// Who does an admin command's writing. The data directory has one owner (storage/data-lock.ts): when a
// server holds it, the command sends its work to that server's admin API; when nobody does, the command
// takes the lock itself (a server starting meanwhile is refused, LS_DATA_DIR_LOCKED) and works alone.
import { readFile } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import { LongshoreError } from '../errors.js';
import { DataLock } from '../storage/data-lock.js';
import { StorePaths } from '../storage/paths.js';
import { AdminClient } from './admin-client.js';

export type Owner = { kind: 'server'; client: AdminClient } | { kind: 'alone' };

/** The running server to send work to, or 'alone' when the command must take the lock itself. */
export async function findOwner(config: Config): Promise<Owner> {
  const paths = new StorePaths(config.dataDir);
  const owner = await DataLock.owner(paths.lock);
  if (!owner || owner.role !== 'server') return { kind: 'alone' }; // a command's lock makes acquire() refuse, naming it
  if (!owner.adminUrl) {
    throw new LongshoreError('LS_DATA_DIR_LOCKED', `a Longshore server (pid ${owner.pid}) holds ${paths.root} but is not listening yet; try again in a moment`, { pid: owner.pid });
  }
  let token: string;
  try {
    token = (await readFile(paths.adminToken, 'utf8')).trim();
  } catch (err) {
    throw new LongshoreError('LS_ADMIN_TOKEN_INVALID', `a Longshore server (pid ${owner.pid}) serves ${paths.root}, and its admin token ${paths.adminToken} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): run this command as the account that runs the server`);
  }
  return { kind: 'server', client: new AdminClient(owner.adminUrl, token, owner.adminCertificate) };
}
