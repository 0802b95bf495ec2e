// WWW-Authenticate parsing (RFC 9110 §11.6.1): a scheme followed by auth-params, values either tokens
// or quoted strings with backslash escapes. Registries send e.g.
//   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"
// Several challenges may share one header, separated by commas; the parser returns each.

export interface Challenge {
  /** Lower-cased scheme: "bearer", "basic", … */
  scheme: string;
  params: Record<string, string>;
}

const TOKEN = /[!#$%&'*+.^_`|~0-9A-Za-z-]+/y;
/** Unquoted values are read leniently up to the next comma or space: some servers send bare URLs. */
const BARE_VALUE = /[^,\s]+/y;

export function parseChallenges(header: string | readonly string[] | undefined): Challenge[] {
  const headers = header === undefined ? [] : typeof header === 'string' ? [header] : header;
  const out: Challenge[] = [];
  for (const text of headers) out.push(...parseOne(text));
  return out;
}

function parseOne(text: string): Challenge[] {
  const challenges: Challenge[] = [];
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++;
  };
  const token = (): string | undefined => {
    TOKEN.lastIndex = i;
    const m = TOKEN.exec(text);
    if (!m) return undefined;
    i = TOKEN.lastIndex;
    return m[0];
  };
  const bare = (): string => {
    BARE_VALUE.lastIndex = i;
    const m = BARE_VALUE.exec(text);
    if (!m) return '';
    i = BARE_VALUE.lastIndex;
    return m[0];
  };
  const quoted = (): string => {
    let value = '';
    i++; // opening quote
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\' && i + 1 < text.length) i++;
      value += text[i];
      i++;
    }
    i++; // closing quote
    return value;
  };

  while (i < text.length) {
    skipSpace();
    while (text[i] === ',') {
      i++;
      skipSpace();
    }
    const scheme = token();
    if (!scheme) break;
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    for (;;) {
      skipSpace();
      const start = i;
      const name = token();
      if (!name) break;
      skipSpace();
      if (text[i] !== '=') {
        // Not a parameter: the start of the next challenge's scheme.
        i = start;
        break;
      }
      i++;
      skipSpace();
      const value = text[i] === '"' ? quoted() : bare();
      challenge.params[name.toLowerCase()] = value;
      skipSpace();
      if (text[i] === ',') i++;
    }
  }
  return challenges;
}
