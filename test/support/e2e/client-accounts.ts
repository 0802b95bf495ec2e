// Longshore's own client accounts for e2e scenarios with client auth on: the `auth` config section
// that gives each account pull on some repositories and leaves nothing open to anonymous clients.
import bcrypt from 'bcryptjs';
import type { Credentials } from './registry-client.js';

/** One account and the repository patterns (`docker.io/library/*`) it may pull. */
export interface PullGrant {
  account: Credentials;
  pull: readonly string[];
}

/**
 * The `auth` section for `grants`: client auth on, each account's password as a bcrypt hash of
 * `cost` rounds, one pull rule per account, no rule for anonymous clients.
 */
export function pullOnlyAuth(grants: readonly PullGrant[], cost = 4): Record<string, unknown> {
  return {
    enabled: true,
    users: grants.map(({ account }) => ({ username: account.username, passwordHash: bcrypt.hashSync(account.password, cost) })),
    rules: grants.map(({ account, pull }) => ({ users: [account.username], repositories: [...pull], actions: ['pull'] })),
  };
}
