// One HTTP/1.1 request written byte for byte on a fresh TCP connection, for fuzzing. node:http refuses
// request targets with control or non-Latin-1 characters and fixes up framing headers; a hostile client
// does neither, so this sends exactly what it is given and parses whatever comes back.
import { connect } from 'node:net';

export interface RawRequest {
  method: string;
  /** The request target, sent as UTF-8 bytes exactly as given ("..", "%2e", NUL, "#" and all). */
  target: string;
  /** Sent as given; nothing is added but Host and Connection: close. */
  headers?: Array<[string, string]>;
  body?: Buffer;
  /** Half-close the connection after the body (a client that announced more than it sent). */
  halfClose?: boolean;
}

export interface RawReply {
  /** 0 when the connection closed without a response. */
  status: number;
  /** Lower-case names; the last value of a repeated header. */
  headers: Record<string, string>;
  body: Buffer;
}

/** Rejects only when nothing at all happened within `timeoutMs`: the server hung. */
export function sendRaw(base: string, request: RawRequest, timeoutMs = 10_000): Promise<RawReply> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms to ${request.method} ${request.target.slice(0, 200)}`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined); // a reset after the response is read is normal
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(parseReply(Buffer.concat(chunks), request.method === 'HEAD'));
    });
    const lines = [`${request.method} ${request.target} HTTP/1.1`, `host: ${hostname}:${port}`, 'connection: close'];
    for (const [name, value] of request.headers ?? []) lines.push(`${name}: ${value}`);
    socket.write(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8'), request.body ?? Buffer.alloc(0)]));
    if (request.halfClose) socket.end();
  });
}

/** The first response in `data`; a truncated or absent one yields status 0. */
export function parseReply(data: Buffer, head: boolean): RawReply {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return { status: 0, headers: {}, body: Buffer.alloc(0) };
  const [statusLine, ...headerLines] = data.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = data.subarray(end + 4);
  if (head || status === 204 || status === 304) body = Buffer.alloc(0);
  else if (headers['transfer-encoding']?.toLowerCase() === 'chunked') body = dechunk(body);
  else if (headers['content-length'] !== undefined) body = body.subarray(0, Number(headers['content-length']));
  return { status, headers, body };
}

function dechunk(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd < 0) break;
    const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}
