// Just enough of a registry client to read back what was pushed: GET/HEAD with the Bearer token
// dance (answer a 401 challenge by asking its realm for a token, then retry once).

export interface Credentials {
  username: string;
  password: string;
}

export interface RegistryResponse {
  status: number;
  headers: Headers;
  body: Buffer;
}

export interface RegistryRequest {
  method?: 'GET' | 'HEAD';
  accept?: readonly string[];
  credentials?: Credentials;
}

export async function registryRequest(url: string, options: RegistryRequest = {}): Promise<RegistryResponse> {
  const headers: Record<string, string> = {};
  if (options.accept !== undefined) headers.accept = options.accept.join(', ');
  const method = options.method ?? 'GET';
  let res = await fetch(url, { method, headers });
  const challenge = res.headers.get('www-authenticate');
  if (res.status === 401 && challenge !== null && /^Bearer\s/i.test(challenge)) {
    await res.arrayBuffer();
    const token = await fetchToken(challenge, options.credentials);
    res = await fetch(url, { method, headers: { ...headers, authorization: `Bearer ${token}` } });
  }
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** Parameters of a `Bearer realm="…",service="…",scope="…"` challenge. */
export function parseBearerChallenge(header: string): Record<string, string> {
  const params: Record<string, string> = {};
  for (const match of header.replace(/^Bearer\s+/i, '').matchAll(/([a-z_]+)="([^"]*)"/gi)) {
    params[match[1]!.toLowerCase()] = match[2]!;
  }
  return params;
}

async function fetchToken(challenge: string, credentials: Credentials | undefined): Promise<string> {
  const { realm, service, scope } = parseBearerChallenge(challenge);
  if (realm === undefined) throw new Error(`challenge without realm: ${challenge}`);
  const url = new URL(realm);
  if (service !== undefined) url.searchParams.set('service', service);
  if (scope !== undefined) url.searchParams.set('scope', scope);
  const headers: Record<string, string> = {};
  if (credentials !== undefined) {
    headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
  }
  const res = await fetch(url, { headers });
  if (!res.ok) throw new Error(`token request to ${url.origin}${url.pathname} failed with ${res.status}`);
  const body = await res.json() as { token?: string; access_token?: string };
  const token = body.token ?? body.access_token;
  if (token === undefined) throw new Error('token response without a token');
  return token;
}
