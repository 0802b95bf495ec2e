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
import { promisify } from 'node:util';
import { LongshoreError, isLongshoreError } from '../errors.js';
import { ChunkPool, type RecyclingStream } from '../storage/chunk-pool.js';
import { READ_CHUNK, type ByteRange, type ContentWriter } from '../storage/content-store.js';
import { algorithmOf, Digester, type Digest } from '../digest.js';
import { DigestVerifier } from './verifying-stream.js';

const readAsync = promisify(read);

/** The upstream body is paused once this much is queued for the disk: bounds memory per download. */
const WRITE_QUEUE_HIGH = 2 * 1024 * 1024;

type FillState = 'filling' | 'verified' | 'failed';

/** Asks the upstream for the blob's bytes from `offset` on, after the stream broke there. */
export type ResumeFrom = (offset: number) => Promise<Readable>;

interface PumpResult {
  /** Set when the stream failed; `fromSource` tells a broken upstream stream from a failed disk write. */
  error?: Error;
  fromSource?: boolean;
}

export interface FillOptions {
  /** Resumes a broken download with a Range request, at most `maxResumes` times. */
  resume?: ResumeFrom;
  maxResumes?: number;
  /** Called after each resume, for logs. */
  onResume?: (offset: number, attempt: number, cause: Error) => void;
  /** Called with the size of each batch of upstream bytes written, for metrics. */
  onBytes?: (count: number) => void;
  /**
   * When writing fails locally (the disk is full), readers continue from the upstream at their own
   * offset through this, verifying the whole digest themselves; nothing is cached.
   */
  relayFrom?: ResumeFrom;
  /**
   * Where readers take their read buffers (the content store's pool); by default a pool of their own.
   * Its scavenger is told about each batch of upstream buffers once the batch is on disk.
   */
  chunks?: ChunkPool;
}

export class BlobFill {
  private state: FillState = 'filling';
  private failure: Error | undefined;
  /** The failure was writing to local disk, not the upstream: readers may relay. */
  private localFailure = false;
  private written = 0;
  private users = 1; // the fill itself, until it has finished with the descriptor
  private running = true;
  private readonly waiters = new Set<() => void>();
  readonly chunks: ChunkPool;
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
    private readonly options: FillOptions = {},
  ) {
    this.chunks = options.chunks ?? new ChunkPool({ chunkSize: READ_CHUNK, maxFree: 2 });
    this.done = this.run(source, onCommit);
    this.done.catch(() => undefined); // failures reach readers through their streams
  }

  get bytesWritten(): number {
    return this.written;
  }

  get failed(): boolean {
    return this.state === 'failed';
  }

  /** Client streams reading this download now. */
  get readers(): number {
    return this.users - (this.running ? 1 : 0);
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

  private async run(initial: Readable, onCommit: (size: number) => void | Promise<void>): Promise<void> {
    let source = initial;
    try {
      for (let resumes = 0; ; resumes++) {
        const result = await this.pump(source);
        if (!result.error) break;
        source.destroy();
        if (!result.fromSource) this.localFailure = true;
        // Every byte received before the break is on disk and hashed: continue from there.
        const complete = this.size !== undefined && this.written >= this.size;
        if (!result.fromSource || complete || !resumable(result.error) || !this.options.resume || resumes >= (this.options.maxResumes ?? 0)) throw result.error;
        this.options.onResume?.(this.written, resumes + 1, result.error);
        source = await this.options.resume(this.written);
      }
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
      this.running = false;
      this.release();
    }
  }

  /**
   * Copies a body to the temp file in batches. Resolves at the end of the body, or when it broke — after
   * every byte received up to the break has been written, so a resume can start right after them.
   */
  private pump(source: Readable): Promise<PumpResult> {
    return new Promise((resolve) => {
      let queue: Buffer[] = [];
      let queued = 0;
      let writing = false;
      let ended = false;
      let sourceError: Error | undefined;
      let writeError: Error | undefined;
      let settled = false;
      const settle = () => {
        if (settled || writing) return;
        if (writeError) {
          settled = true;
          return resolve({ error: writeError, fromSource: false });
        }
        if (queue.length > 0) return void drain();
        if (sourceError || ended) {
          settled = true;
          detach();
          resolve(sourceError ? { error: sourceError, fromSource: true } : {});
        }
      };
      const drain = async () => {
        writing = true;
        try {
          while (queue.length > 0) {
            const batch = queue;
            queue = [];
            queued = 0;
            if (source.isPaused() && !sourceError) source.resume();
            await this.writer.write(batch);
            const count = this.writer.written - this.written;
            this.chunks.scavenger?.dropped(count);
            this.options.onBytes?.(count);
            this.written = this.writer.written;
            this.notify();
          }
        } catch (err) {
          writeError = err instanceof Error ? err : new Error(String(err));
          detach();
        } finally {
          writing = false;
        }
        settle();
      };
      const onData = (chunk: Buffer) => {
        queue.push(chunk);
        queued += chunk.length;
        if (queued >= WRITE_QUEUE_HIGH) source.pause();
        if (!writing) void drain();
      };
      const onEnd = () => {
        ended = true;
        settle();
      };
      const onError = (err: Error) => {
        sourceError ??= err;
        settle();
      };
      const onClose = () => {
        if (!ended) onError(new LongshoreError('LS_UPSTREAM_UNAVAILABLE', `upstream stream for ${this.digest} ended early`, { digest: this.digest, received: this.written }));
      };
      const detach = () => {
        source.off('data', onData);
        source.off('end', onEnd);
        source.off('error', onError);
        source.off('close', onClose);
        source.on('error', () => undefined); // a late error on a dropped stream must not crash the process
      };
      source.on('data', onData);
      source.once('end', onEnd);
      source.once('error', onError);
      source.once('close', onClose);
      // A body can fail before anyone listens (the upstream client's size cap trips on the first chunk
      // while the temp file is being created): its error and close were emitted already, never again.
      if (source.errored) onError(source.errored);
      else if (source.destroyed) onClose();
    });
  }

  /**
   * For a reader after a local write failure: the upstream's bytes from `position` on, verified together
   * with the `position` bytes this reader already sent (re-read from the temp file). Undefined when this
   * reader cannot be relayed (no relay configured, an upstream failure, or a range request).
   */
  async relay(position: number, ranged: boolean): Promise<Readable | undefined> {
    if (!this.localFailure || !this.options.relayFrom || ranged) return undefined;
    const hash = new Digester(algorithmOf(this.digest));
    const buffer = Buffer.allocUnsafe(READ_CHUNK);
    for (let at = 0; at < position;) {
      const { bytesRead } = await readAsync(this.writer.handle.fd, buffer, 0, Math.min(READ_CHUNK, position - at), at);
      if (bytesRead === 0) return undefined;
      hash.update(buffer.subarray(0, bytesRead));
      at += bytesRead;
    }
    const rest = await this.options.relayFrom(position);
    const verifier = new DigestVerifier(this.digest, this.size, hash, position);
    rest.on('error', (err) => verifier.destroy(err));
    return rest.pipe(verifier);
  }

  /**
   * Waits until the blob is stored (resolves with its size) or the download failed (throws), calling
   * `onBytes` as bytes are written — without reading them back, for a caller that only wants the blob
   * cached (a warm): a reader would re-read every byte from the temp file just to count it.
   */
  async stored(onBytes?: (count: number) => void): Promise<number> {
    let reported = 0;
    const report = () => {
      if (this.written > reported) onBytes?.(this.written - reported);
      reported = Math.max(reported, this.written);
    };
    while (this.state === 'filling') {
      report();
      await new Promise<void>((resolve) => this.wait(resolve));
    }
    report();
    await this.done;
    return this.written;
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
    const buffer = this.chunks.acquire();
    const length = Math.min(buffer.length, limit - position);
    read(this.writer.handle.fd, buffer, 0, length, position, (err, bytesRead) => {
      if (err) return callback(err, undefined);
      callback(null, bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
    });
  }

  /** Drops one user; the descriptor closes when the fill and every reader are done with it. */
  release(): void {
    if (--this.users === 0) void this.writer.close();
  }
}

/**
 * A broken transfer (reset, timeout, early end) is worth a Range request; a body the client refused for
 * what it is (over maxBlobSize, longer than declared) would be refused again.
 */
function resumable(err: Error): boolean {
  return !isLongshoreError(err) || err.code === 'LS_UPSTREAM_UNAVAILABLE' || err.code === 'LS_UPSTREAM_TIMEOUT';
}

class FillReader extends Readable implements RecyclingStream {
  private reading = false;
  private relayed: Readable | undefined;
  private readonly wake = () => this.pull();

  constructor(private readonly fill: BlobFill, private position: number, private readonly end: number | undefined) {
    // One chunk ahead of the consumer, however full: a reader that keeps up with the download reads
    // small pieces into whole pooled chunks, and a byte-counted high-water mark would let it hold
    // dozens of them.
    super({ highWaterMark: 1 });
  }

  recycle(chunk: Buffer): void {
    this.fill.chunks.release(chunk);
  }

  override _read(): void {
    if (this.relayed) this.relayed.resume();
    else this.pull();
  }

  /** Switches to the upstream relay after a local write failure, or fails with `err`. */
  private fallBack(err: Error): void {
    this.reading = true; // no more reads from the file
    this.fill.relay(this.position, this.end !== undefined).then(
      (stream) => {
        if (this.destroyed) return void stream?.destroy();
        if (!stream) return void this.destroy(err);
        this.relayed = stream;
        stream.on('data', (chunk: Buffer) => {
          if (!this.push(chunk)) stream.pause();
        });
        stream.once('end', () => this.push(null));
        stream.once('error', (relayErr) => this.destroy(relayErr));
      },
      (relayErr: Error) => this.destroy(relayErr),
    );
  }

  private pull(): void {
    if (this.reading || this.destroyed) return;
    this.reading = true;
    this.fill.readAt(this.position, this.end, (err, chunk) => {
      this.reading = false;
      if (this.destroyed) return;
      if (err) return this.fallBack(err);
      if (chunk === null) return void this.push(null);
      if (chunk === undefined) return this.fill.wait(this.wake);
      this.position += chunk.length;
      if (this.push(chunk)) this.pull();
    });
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.relayed?.destroy();
    this.fill.unwait(this.wake);
    this.fill.release();
    callback(err);
  }
}
