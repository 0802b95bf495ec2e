// A blob download from an upstream into the content store, shared by every client that wants it.
//
// The upstream body is written to a temp file (ContentWriter hashes as it writes). Clients — the one
// that caused the download and any that join later — read that file as it grows, through the same
// descriptor, each at its own pace: a slow client never holds back the download, and a client that
// leaves never aborts it. The last byte is held back from every reader until the digest and size are
// verified, so a corrupt or short download reaches no client as a complete response: readers are
// destroyed instead, and the client sees a broken transfer.
import { read } from 'node:fs';
import { Readable } from 'node:stream';
import { LongshoreError } from '../errors.js';
import { READ_CHUNK, type ByteRange, type ContentWriter } from '../storage/content-store.js';
import type { Digest } from './reference.js';

/** The upstream body is paused once this much is queued for the disk: bounds memory per download. */
const WRITE_QUEUE_HIGH = 8 * 1024 * 1024;

type FillState = 'filling' | 'verified' | 'failed';

export class BlobFill {
  private state: FillState = 'filling';
  private failure: Error | undefined;
  private written = 0;
  private users = 1; // the fill itself, until it has finished with the descriptor
  private readonly waiters = new Set<() => void>();
  /** Settles when the blob is committed to the store (resolves) or the download failed (rejects). */
  readonly done: Promise<void>;

  constructor(
    readonly digest: Digest,
    /** From the upstream's Content-Length; undefined when it sent none. */
    readonly size: number | undefined,
    private readonly writer: ContentWriter,
    source: Readable,
    /** Runs after the verified file is in place, before the fill stops accepting joiners. */
    onCommit: (size: number) => void | Promise<void>,
  ) {
    this.done = this.run(source, onCommit);
    this.done.catch(() => undefined); // failures reach readers through their streams
  }

  get bytesWritten(): number {
    return this.written;
  }

  get failed(): boolean {
    return this.state === 'failed';
  }

  /** Bytes a reader may take now: all once verified, else all but the last written byte. */
  private get readable(): number {
    return this.state === 'verified' ? this.written : Math.max(0, this.written - 1);
  }

  /** A stream of the blob (or a range of it) as it arrives. Ranges need a known size. */
  reader(range?: ByteRange): Readable {
    this.users++;
    return new FillReader(this, range?.start ?? 0, range?.end);
  }

  private async run(source: Readable, onCommit: (size: number) => void | Promise<void>): Promise<void> {
    try {
      await this.pump(source);
      this.writer.verify();
      this.state = 'verified';
      this.notify();
      await this.writer.commit();
      await onCommit(this.written);
    } catch (err) {
      this.state = 'failed';
      this.failure = err instanceof Error ? err : new Error(String(err));
      source.destroy();
      this.notify();
      await this.writer.cancel();
      throw this.failure;
    } finally {
      this.release();
    }
  }

  /** Copies the upstream body to the temp file in batches; resolves at the end of the body. */
  private pump(source: Readable): Promise<void> {
    return new Promise((resolve, reject) => {
      let queue: Buffer[] = [];
      let queued = 0;
      let writing = false;
      let ended = false;
      let settled = false;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        reject(err);
      };
      const drain = async () => {
        writing = true;
        try {
          while (queue.length > 0 && !settled) {
            const batch = queue;
            queue = [];
            queued = 0;
            if (source.isPaused()) source.resume();
            await this.writer.write(batch);
            this.written = this.writer.written;
            this.notify();
          }
        } catch (err) {
          fail(err);
          return;
        } finally {
          writing = false;
        }
        if (ended && !settled) {
          settled = true;
          resolve();
        }
      };
      source.on('data', (chunk: Buffer) => {
        queue.push(chunk);
        queued += chunk.length;
        if (queued >= WRITE_QUEUE_HIGH) source.pause();
        if (!writing) void drain();
      });
      source.once('end', () => {
        ended = true;
        if (!writing) void drain();
      });
      source.once('error', fail);
      source.once('close', () => {
        if (!ended) fail(new LongshoreError('LS_UPSTREAM_UNAVAILABLE', `upstream stream for ${this.digest} ended early`, { digest: this.digest, received: this.written }));
      });
    });
  }

  /** Calls `wake` at the next progress, verification or failure. */
  wait(wake: () => void): void {
    this.waiters.add(wake);
  }

  unwait(wake: () => void): void {
    this.waiters.delete(wake);
  }

  private notify(): void {
    if (this.waiters.size === 0) return;
    const woken = [...this.waiters];
    this.waiters.clear();
    for (const wake of woken) wake();
  }

  /** Reads bytes at `position` that are already readable; `undefined` means: wait, or finished/failed. */
  readAt(position: number, end: number | undefined, callback: (err: Error | null, chunk: Buffer | null | undefined) => void): void {
    if (this.state === 'failed') return callback(this.failure ?? new Error('download failed'), undefined);
    const limit = end === undefined ? this.readable : Math.min(end + 1, this.readable);
    if (position >= limit) {
      const finished = end !== undefined ? position > end : this.state === 'verified' && position >= this.written;
      return callback(null, finished ? null : undefined);
    }
    const length = Math.min(READ_CHUNK, limit - position);
    const buffer = Buffer.allocUnsafe(length);
    read(this.writer.handle.fd, buffer, 0, length, position, (err, bytesRead) => {
      if (err) return callback(err, undefined);
      callback(null, bytesRead === length ? buffer : buffer.subarray(0, bytesRead));
    });
  }

  /** Drops one user; the descriptor closes when the fill and every reader are done with it. */
  release(): void {
    if (--this.users === 0) void this.writer.close();
  }
}

class FillReader extends Readable {
  private reading = false;
  private readonly wake = () => this.pull();

  constructor(private readonly fill: BlobFill, private position: number, private readonly end: number | undefined) {
    super({ highWaterMark: READ_CHUNK });
  }

  override _read(): void {
    this.pull();
  }

  private pull(): void {
    if (this.reading || this.destroyed) return;
    this.reading = true;
    this.fill.readAt(this.position, this.end, (err, chunk) => {
      this.reading = false;
      if (this.destroyed) return;
      if (err) return void this.destroy(err);
      if (chunk === null) return void this.push(null);
      if (chunk === undefined) return this.fill.wait(this.wake);
      this.position += chunk.length;
      if (this.push(chunk)) this.pull();
    });
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.fill.unwait(this.wake);
    this.fill.release();
    callback(err);
  }
}
