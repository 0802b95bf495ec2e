// Who may do what to which repository, from `auth.rules`. A rule names users ("alice", "*" for any
// authenticated user, "anonymous" for requests without credentials), repository patterns over routed
// names ("docker.io/library/*", where "*" matches any characters, "/" included) and actions. An
// authenticated user also gets whatever anonymous requests get: logging in never takes rights away.
// Actions of every matching rule add up; nothing is allowed that no rule allows.

export type Action = 'pull' | 'push' | 'delete';

/** The subject of a request: a user name, or null for an anonymous request. */
export type Subject = string | null;

export interface RuleConfig {
  readonly users: readonly string[];
  readonly repositories: readonly string[];
  readonly actions: readonly Action[];
}

const ANY_USER = '*';
const ANONYMOUS = 'anonymous';

interface CompiledRule {
  users: ReadonlySet<string>;
  repositories: readonly RegExp[];
  everything: boolean;
  actions: readonly Action[];
}

export class AccessRules {
  private readonly rules: readonly CompiledRule[];

  constructor(rules: readonly RuleConfig[]) {
    this.rules = rules.map((rule) => ({
      users: new Set(rule.users),
      repositories: rule.repositories.map(globToRegExp),
      everything: rule.repositories.includes('*'),
      actions: rule.actions,
    }));
  }

  /** The actions `subject` may perform on `repository` (a routed name such as "docker.io/library/alpine"). */
  allowed(subject: Subject, repository: string): Set<Action> {
    const actions = new Set<Action>();
    for (const rule of this.rules) {
      if (!this.applies(rule, subject)) continue;
      if (!rule.repositories.some((pattern) => pattern.test(repository))) continue;
      for (const action of rule.actions) actions.add(action);
    }
    return actions;
  }

  permits(subject: Subject, repository: string, action: Action): boolean {
    return this.allowed(subject, repository).has(action);
  }

  /** Whether a rule with the repository pattern "*" allows `action` to `subject`: rights over every repository. */
  permitsEverywhere(subject: Subject, action: Action): boolean {
    return this.rules.some((rule) => this.applies(rule, subject) && rule.everything && rule.actions.includes(action));
  }

  private applies(rule: CompiledRule, subject: Subject): boolean {
    if (rule.users.has(ANONYMOUS)) return true;
    return subject !== null && (rule.users.has(ANY_USER) || rule.users.has(subject));
  }
}

function globToRegExp(pattern: string): RegExp {
  const source = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  return new RegExp(`^${source}$`);
}
