// Scopes and challenges of the registry token protocol (distribution docs/spec/auth/scope.md, token.md).
//   scope:     repository:library/alpine:pull,push   (the name may itself hold ":" — a host with a port)
//   challenge: Bearer realm="https://mirror:5000/token",service="longshore",scope="repository:library/alpine:pull"

export interface RequestedScope {
  type: string;
  name: string;
  actions: string[];
}

/** Each value may hold several scopes separated by spaces (the OAuth2 form); unparsable ones are dropped. */
export function parseScopes(values: readonly string[]): RequestedScope[] {
  const scopes: RequestedScope[] = [];
  for (const value of values) {
    for (const text of value.split(' ')) {
      const first = text.indexOf(':');
      const last = text.lastIndexOf(':');
      if (first <= 0 || last === first) continue;
      scopes.push({
        type: text.slice(0, first),
        name: text.slice(first + 1, last),
        actions: text.slice(last + 1).split(',').filter((a) => a !== ''),
      });
    }
  }
  return scopes;
}

export interface ChallengeParams {
  /** The token endpoint's URL. */
  realm: string;
  service: string;
  scope?: string;
  /** RFC 6750 error: "invalid_token" or "insufficient_scope". */
  error?: 'invalid_token' | 'insufficient_scope';
}

export function bearerChallenge({ realm, service, scope, error }: ChallengeParams): string {
  const params = [`realm=${quote(realm)}`, `service=${quote(service)}`];
  if (scope !== undefined) params.push(`scope=${quote(scope)}`);
  if (error !== undefined) params.push(`error=${quote(error)}`);
  return `Bearer ${params.join(',')}`;
}

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}
