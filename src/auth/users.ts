// The accounts clients log in with: `auth.users` from the config plus the entries of `auth.htpasswd`.
// Only bcrypt hashes are accepted (htpasswd -B): the other htpasswd formats (MD5-crypt, SHA1, crypt)
// are too cheap to brute-force. Files are read once, at start-up.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import { inlineChecker, type PasswordChecker } from './password-pool.js';

const BCRYPT = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;
/** Compared against when the user is unknown, so that a wrong name costs as long as a wrong password. */
const DECOY_HASH = '$2b$10$7w1jdFOBmjv9rftMDs8iDOTH3AXCJ1Jtm3JNGB7.vAGAwJjDk039C';

export interface UserEntry {
  readonly username: string;
  readonly passwordHash: string;
}

export class UserStore {
  private readonly hashes = new Map<string, string>();

  /** `checker` compares hashes; the server passes a PasswordPool so that none is compared on the event loop. */
  constructor(users: readonly UserEntry[], htpasswd?: string, private readonly checker: PasswordChecker = inlineChecker) {
    if (htpasswd !== undefined) {
      for (const entry of parseHtpasswd(htpasswd)) this.hashes.set(entry.username, entry.passwordHash);
    }
    // Accounts in the config file win over a same-named htpasswd line.
    for (const user of users) this.hashes.set(user.username, user.passwordHash);
  }

  /** Reads `auth.htpasswd` (relative to `cwd`); errors name the file and line, never a hash. */
  static fromConfig(users: readonly UserEntry[], htpasswdPath: string | null, checker?: PasswordChecker, cwd = process.cwd()): UserStore {
    if (htpasswdPath === null) return new UserStore(users, undefined, checker);
    const path = resolve(cwd, htpasswdPath);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError(`auth.htpasswd: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`);
    }
    try {
      return new UserStore(users, text, checker);
    } catch (err) {
      throw new ConfigError(`auth.htpasswd: ${path}: ${(err as Error).message}`);
    }
  }

  get size(): number {
    return this.hashes.size;
  }

  async verify(username: string, password: string): Promise<boolean> {
    const hash = this.hashes.get(username);
    const matches = await this.checker.check(password, hash ?? DECOY_HASH);
    return hash !== undefined && matches;
  }
}

export function parseHtpasswd(text: string): UserEntry[] {
  const entries: UserEntry[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const username = colon > 0 ? line.slice(0, colon) : '';
    const passwordHash = line.slice(colon + 1);
    if (username === '' || /\s/.test(username)) throw new ConfigError(`line ${index + 1} is not "user:hash"`);
    if (!BCRYPT.test(passwordHash)) throw new ConfigError(`line ${index + 1} (user "${username}") is not a bcrypt entry; create it with htpasswd -B`);
    entries.push({ username, passwordHash });
  });
  return entries;
}
