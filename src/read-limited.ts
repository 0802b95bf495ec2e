// Reads a small body (a manifest, a token response, a tag list) into memory, up to a limit. The caller
// says what exceeding it means: an upstream's response and a client's request are different failures.
import type { LongshoreError } from './errors.js';

type Body = AsyncIterable<Buffer> & { destroy(err?: Error): unknown };

/** The whole body, or the error `tooLarge` makes as soon as more than `limit` bytes arrived (the body is destroyed). */
export async function readLimited(body: Body, limit: number, tooLarge: (limit: number) => LongshoreError): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of body) {
    length += chunk.length;
    if (length > limit) {
      body.destroy();
      throw tooLarge(limit);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, length);
}
