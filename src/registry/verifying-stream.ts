// A pass-through that checks a blob's digest and size as the bytes go by, holding back the last chunk
// until the end: a mismatch destroys the stream before the final bytes, so the client sees a broken
// transfer, never a complete wrong body. Used where content reaches a client without being stored.
import { Transform, type TransformCallback } from 'node:stream';
import { LongshoreError } from '../errors.js';
import { algorithmOf, Digester, type Digest } from '../digest.js';

export class DigestVerifier extends Transform {
  private held: Buffer | undefined;
  private seen: number;

  /** `hash` and `alreadySeen` carry a prefix hashed elsewhere (a relay that starts mid-blob). */
  constructor(
    private readonly digest: Digest,
    private readonly expectedSize: number | undefined,
    private readonly hash: Digester = new Digester(algorithmOf(digest)),
    alreadySeen = 0,
  ) {
    super();
    this.seen = alreadySeen;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.seen += chunk.length;
    if (this.expectedSize !== undefined && this.seen > this.expectedSize) {
      return callback(new LongshoreError('LS_CONTENT_MISMATCH', `content for ${this.digest} is longer than ${this.expectedSize} bytes`, { digest: this.digest }));
    }
    const previous = this.held;
    this.held = chunk;
    callback(null, previous);
  }

  override _flush(callback: TransformCallback): void {
    const actual = this.hash.digest();
    if (actual !== this.digest || (this.expectedSize !== undefined && this.seen !== this.expectedSize)) {
      return callback(new LongshoreError('LS_CONTENT_MISMATCH', `content does not match digest ${this.digest}`, { digest: this.digest, actual, size: this.seen }));
    }
    callback(null, this.held);
  }
}
