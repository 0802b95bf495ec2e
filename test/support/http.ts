// Small HTTP helpers for tests: a buffered request, and a raw request whose path is sent verbatim
// (fetch and undici normalise "..", which is exactly what a traversal test must not do).
import { request as rawRequest } from 'node:http';
import { request } from 'undici';

export const ALL_MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json<T = unknown>(): T;
}

export async function get(url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<Reply> {
  const res = await request(url, { method, headers });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body, json: <T>() => JSON.parse(body.toString()) as T };
}

/** Sends `path` exactly as given; resolves with status and body, or with `error` when the transfer broke. */
export function raw(base: string, path: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<{ status: number; body: Buffer; error?: Error; headers: Record<string, unknown> }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve) => {
    const req = rawRequest({ host: hostname, port, path, headers, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }));
      res.on('error', (error) => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), error, headers: res.headers }));
    });
    req.on('error', (error) => resolve({ status: 0, body: Buffer.alloc(0), error, headers: {} }));
    req.end();
  });
}

export function errorCode(reply: Reply): string | undefined {
  return reply.json<{ errors: Array<{ code: string }> }>().errors[0]?.code;
}

export interface RegistryReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The first OCI error's code and message, on an error reply with a body. */
  code?: string;
  message?: string;
}

/** Any method, with an optional body, to `base` + `path`; an error reply's first OCI error is read out. */
export async function callRegistry(base: string, method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<RegistryReply> {
  const res = await request(`${base}${path}`, { method: method as 'GET', headers, ...(body !== undefined ? { body } : {}) });
  const buf = Buffer.from(await res.body.arrayBuffer());
  const reply: RegistryReply = { status: res.statusCode, headers: res.headers, body: buf };
  if (res.statusCode >= 400 && buf.length > 0) {
    const error = (JSON.parse(buf.toString()) as { errors: Array<{ code: string; message: string }> }).errors[0];
    if (error) Object.assign(reply, { code: error.code, message: error.message });
  }
  return reply;
}
