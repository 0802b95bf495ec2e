// The digest-keyed content store. Content becomes visible only through ContentWriter.commit():
// bytes go to a temp file while their digest is computed (with the digest's own algorithm), the digest and size are checked, the file is
// flushed, and only then renamed to its digest path (atomic: same filesystem). A reader therefore
// never sees a partial or unverified file under a digest path.
import { createReadStream, read } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, truncate, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { LongshoreError } from '../errors.js';
import { algorithmOf, CANONICAL_ALGORITHM, DIGEST_ALGORITHMS, Digester, isEncoded, type Digest, type DigestAlgorithm } from '../digest.js';
import { ChunkPool, type RecyclingStream } from './chunk-pool.js';
import type { ContentFiles, MaintenanceStore, UploadStore } from './interfaces.js';
import type { StorePaths } from './paths.js';
import type { Scavenger } from './scavenger.js';

/** Reads from the store use 1 MiB chunks: 64 KiB reads serve a large blob at a quarter of the speed. */
export const READ_CHUNK = 1024 * 1024;
/** Free read chunks kept for reuse across streams (16 MiB). */
const IDLE_CHUNKS = 8;

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

export class ContentStore implements ContentFiles, UploadStore, MaintenanceStore {
  /** Read buffers shared by every stream of stored or downloading content. */
  readonly chunks: ChunkPool;

  /** `scavenger` frees the buffers the pool and downloads let go (storage/scavenger.ts). */
  constructor(readonly paths: StorePaths, scavenger?: Scavenger) {
    this.chunks = new ChunkPool({ chunkSize: READ_CHUNK, maxFree: IDLE_CHUNKS, scavenger });
  }

  /** Creates the directories and removes temp files left by a crash. Returns how many were removed. */
  async init(): Promise<number> {
    for (const algorithm of DIGEST_ALGORITHMS) await mkdir(this.paths.algorithmDir(algorithm), { recursive: true });
    await mkdir(this.paths.tmp, { recursive: true });
    await mkdir(this.paths.uploads, { recursive: true });
    const leftovers = await readdir(this.paths.tmp);
    await Promise.all(leftovers.map((name) => rm(this.paths.tempNamed(name), { force: true, recursive: true })));
    return leftovers.length;
  }

  /** Every content file with its size, by digest, of every algorithm; names that are not digests are ignored. */
  async list(): Promise<Map<Digest, number>> {
    const out = new Map<Digest, number>();
    for await (const digests of this.contentDirectories()) {
      for (const digest of digests) {
        const info = await stat(this.paths.content(digest));
        if (info.isFile()) out.set(digest, info.size);
      }
    }
    return out;
  }

  /**
   * The content directories (blobs/<algorithm>/<aa>, paths.ts), one at a time in name order, as the
   * digests their entries name; entries that name no digest of the directory are skipped. Nothing is
   * stat'ed: a walk of a large store does a directory's work per step.
   */
  async *contentDirectories(): AsyncGenerator<Digest[]> {
    for (const algorithm of DIGEST_ALGORITHMS) {
      const root = this.paths.algorithmDir(algorithm);
      let prefixes: string[];
      try {
        prefixes = await readdir(root);
      } catch {
        continue; // no content of this algorithm yet
      }
      for (const prefix of prefixes.sort()) {
        if (!/^[a-f0-9]{2}$/.test(prefix)) continue;
        const names = await readdir(join(root, prefix)).catch(() => [] as string[]);
        yield names.filter((name) => isEncoded(algorithm, name) && name.startsWith(prefix)).map((name): Digest => `${algorithm}:${name}`);
      }
    }
  }

  /** Size and modification time of a stored regular file; undefined when there is none (or it cannot be read). */
  async stat(digest: Digest): Promise<{ size: number; mtimeMs: number } | undefined> {
    const info = await stat(this.paths.content(digest)).catch(() => undefined);
    return info?.isFile() ? { size: info.size, mtimeMs: info.mtimeMs } : undefined;
  }

  /** Size of stored content, or undefined when it is not stored. */
  async size(digest: Digest): Promise<number | undefined> {
    try {
      return (await stat(this.paths.content(digest))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /**
   * Opens stored content for reading. The open descriptor keeps the bytes readable even if the file is
   * removed meanwhile (eviction), so a response that started always finishes.
   */
  async open(digest: Digest): Promise<StoredContent | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(this.paths.content(digest), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const { size } = await handle.stat();
      return new StoredContent(handle, size, this.chunks);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Whole content as a buffer; for manifests only (bounded by maxManifestSize), never for blobs. */
  async read(digest: Digest): Promise<Buffer | undefined> {
    const content = await this.open(digest);
    if (!content) return undefined;
    try {
      return await content.handle.readFile();
    } finally {
      await content.close();
    }
  }

  /** Stores a small, already complete body (a manifest) under its digest, verifying it first. */
  async put(digest: Digest, body: Buffer): Promise<void> {
    const writer = await this.createWriter(digest, body.length);
    try {
      await writer.write([body]);
      writer.verify();
      await writer.commit();
    } catch (err) {
      await writer.cancel();
      throw err;
    } finally {
      await writer.close();
    }
  }

  /** A writer of content whose digest (and usually size) is known before its bytes: a pull, an import. */
  async createWriter(digest: Digest, expectedSize: number | undefined): Promise<ContentWriter> {
    const tempPath = this.paths.newTemp();
    // wx+: fail if the name exists; readable too, so followers of a download read the same descriptor.
    const handle = await open(tempPath, 'wx+', 0o644);
    return new ContentWriter(this.paths, tempPath, handle, { expected: { digest, size: expectedSize } });
  }

  // ---- upload files: one per session of a push, named by the session's id, kept across restarts ----

  /** The ids of the upload files present (after a restart, the sessions to take up or remove). */
  async uploadIds(): Promise<string[]> {
    return readdir(this.paths.uploads);
  }

  /** Bytes in an upload's file; undefined when it has none. `id` is a session id this process generated (a UUID), never a client's text. */
  async uploadSize(id: string): Promise<number | undefined> {
    const info = await stat(this.paths.upload(id)).catch(() => undefined);
    return info?.isFile() ? info.size : undefined;
  }

  /** Cuts an upload's file back to the `size` bytes its session counts (what an interrupted append left goes). */
  async trimUpload(id: string, size: number): Promise<void> {
    await truncate(this.paths.upload(id), size);
  }

  /** An empty file for a new upload; fails if the id is taken. */
  async createUpload(id: string): Promise<void> {
    const handle = await open(this.paths.upload(id), 'wx', 0o644);
    await handle.close();
  }

  /**
   * A writer that appends to an upload's file from `offset` (its bytes so far; anything after them, an
   * append a crash interrupted, is cut off). `digester` is the running hash of those bytes, when known;
   * the digest is named at the end (verifyAs), normally of its algorithm.
   */
  async appendToUpload(id: string, offset: number, digester: Digester | undefined): Promise<ContentWriter> {
    const path = this.paths.upload(id);
    const handle = await open(path, 'r+');
    try {
      const { size } = await handle.stat();
      // Bytes the session never counted (an append cut short) go; bytes it counted must all be there.
      if (size > offset) await handle.truncate(offset);
      else if (size < offset) throw new LongshoreError('LS_INTERNAL', `upload file ${id} holds ${size} bytes, its session ${offset}`, { upload: id, size, offset });
    } catch (err) {
      await handle.close();
      throw err;
    }
    return new ContentWriter(this.paths, path, handle, { algorithm: digester?.algorithm ?? CANONICAL_ALGORITHM, resume: { offset, digester } });
  }

  async removeUpload(id: string): Promise<void> {
    await rm(this.paths.upload(id), { force: true, recursive: true });
  }

  /** The digest, with `digest`'s own algorithm, of the bytes stored under `digest`: equal to it unless the file is corrupt. */
  async hash(digest: Digest): Promise<Digest> {
    return hashFile(this.paths.content(digest), algorithmOf(digest));
  }

  /** Moves a stored file found corrupt out of the store, to quarantine/ (paths.ts), for inspection. */
  async quarantine(digest: Digest): Promise<void> {
    await mkdir(this.paths.quarantineDir, { recursive: true });
    await rename(this.paths.content(digest), this.paths.quarantine(digest));
  }

  async delete(digest: Digest): Promise<boolean> {
    try {
      await unlink(this.paths.content(digest));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }
}

/** The digest of a file's bytes, with `algorithm` (the one of the digest it should match). */
export async function hashFile(path: string, algorithm: DigestAlgorithm): Promise<Digest> {
  const digester = new Digester(algorithm);
  for await (const chunk of createReadStream(path, { highWaterMark: READ_CHUNK })) digester.update(chunk as Buffer);
  return digester.digest();
}

export class StoredContent {
  private closed = false;
  constructor(readonly handle: FileHandle, readonly size: number, private readonly chunks: ChunkPool) {}

  /** A stream of the whole content or of one range; it closes the descriptor when it ends or fails. */
  stream(range?: ByteRange): Readable & RecyclingStream {
    this.closed = true; // the stream owns the descriptor from here on
    return new FileChunkStream(this.handle, range?.start ?? 0, range ? range.end + 1 : this.size, this.chunks);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}

/**
 * Reads [start, end) of an open file into pooled chunks. Unlike fs.createReadStream, which allocates
 * a fresh buffer for every read, each chunk can go back to the pool once it is written (recycle()).
 * The descriptor is closed when the stream ends or is destroyed, never while a read is in flight.
 */
class FileChunkStream extends Readable implements RecyclingStream {
  private inFlight = false;
  private closeAfterRead: (() => void) | undefined;

  constructor(private readonly handle: FileHandle, private position: number, private readonly end: number, private readonly chunks: ChunkPool) {
    // One chunk read ahead of the consumer is enough to keep the socket busy.
    super({ highWaterMark: chunks.chunkSize });
  }

  override _read(): void {
    const length = Math.min(this.chunks.chunkSize, this.end - this.position);
    if (length <= 0) return void this.push(null);
    const chunk = this.chunks.acquire();
    this.inFlight = true;
    read(this.handle.fd, chunk, 0, length, this.position, (err, bytesRead) => {
      this.inFlight = false;
      if (this.closeAfterRead) return this.closeAfterRead();
      if (err) return void this.destroy(err);
      if (bytesRead === 0) {
        // Stored content never shrinks; a file shorter than its size is damaged, and a short body must not pass for a whole one.
        return void this.destroy(new LongshoreError('LS_CONTENT_MISMATCH', `stored content ended at byte ${this.position} of ${this.end}`, { position: this.position, end: this.end }));
      }
      this.position += bytesRead;
      this.push(bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead));
    });
  }

  recycle(chunk: Buffer): void {
    this.chunks.release(chunk);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    const close = () => {
      this.closeAfterRead = undefined;
      this.handle.close().then(() => callback(err), (closeErr: Error) => callback(err ?? closeErr));
    };
    if (this.inFlight) this.closeAfterRead = close;
    else close();
  }
}

/** A writer starts a background flush every this many bytes (see ContentWriter.flushInBackground). */
const FLUSH_EVERY = 16 * 1024 * 1024;
/**
 * A writer closed with at least this many bytes not yet flushed starts a flush and closes once it is
 * done (an upload's 10 MiB PATCH, which never reaches FLUSH_EVERY on its own). Below it, the bytes wait
 * for the next flush: a client sending many small chunks does not cost a disk flush per request.
 */
const FLUSH_ON_CLOSE = 4 * 1024 * 1024;

/** What a ContentWriter is asked to write. */
export interface WriterSpec {
  /** The digest and size the content must have, when they are known before it is written (a pull, an import). */
  expected?: { digest: Digest; size: number | undefined };
  /** The algorithm of the running hash when no digest is expected: the one the name given at commit will most likely have. */
  algorithm?: DigestAlgorithm;
  /** Bytes the file holds already (an upload taken up again), and the running hash of exactly those bytes when it is still known. */
  resume?: { offset: number; digester: Digester | undefined };
}

/**
 * The one way content enters the store: a file outside the content directories (a temp file, or an
 * upload's file) filled while a running hash follows every byte; then verified — against the digest
 * expected from the start (verify()) or one named only at the end (verifyAs(), a push) — flushed, and
 * renamed to its digest path (commit()). commit() refuses a writer that was not verified.
 *
 * A writer can be taken up again where an earlier one stopped (an upload's next chunk): `resume` gives the
 * offset and, if it is still known, the hash of the bytes before it. When that hash is lost (a restart)
 * or is of another algorithm than the digest named at the end, verifyAs() reads the file back once.
 */
export class ContentWriter {
  /** The digest the content must have, when it was known from the start. */
  readonly digest: Digest | undefined;
  readonly expectedSize: number | undefined;
  /** The running hash of bytes [0, written); undefined once it no longer matches them (see rollback). */
  private hash: Digester | undefined;
  /** Where this writer started, and the hash there, for rollback(). */
  private readonly base: { offset: number; hash: Digester | undefined };
  private bytes: number;
  private verified: Digest | undefined;
  private synced = false;
  private done = false;
  /** The background flush in progress, if any. */
  private flushing: Promise<void> | undefined;
  private flushedAt: number;
  private closed = false;
  /** The write in progress, if any: stream() waits for it before it reports itself closed. */
  private writing: Promise<void> | undefined;

  constructor(
    private readonly paths: StorePaths,
    readonly tempPath: string,
    readonly handle: FileHandle,
    spec: WriterSpec,
  ) {
    this.digest = spec.expected?.digest;
    this.expectedSize = spec.expected?.size;
    const algorithm = this.digest ? algorithmOf(this.digest) : spec.algorithm ?? CANONICAL_ALGORITHM;
    const offset = spec.resume?.offset ?? 0;
    // The caller's digester is copied, never changed: it stays the hash at `offset` whatever happens here.
    const known = spec.resume?.digester ?? (offset === 0 ? new Digester(algorithm) : undefined);
    this.hash = known?.copy();
    this.base = { offset, hash: known };
    this.bytes = offset;
    this.flushedAt = offset;
  }

  get written(): number {
    return this.bytes;
  }

  /** The running hash of every byte written, when it is still known: what a later writer of the same file resumes with. Never the caller's own digester. */
  get digester(): Digester | undefined {
    return this.hash;
  }

  /**
   * Appends chunks in order. Callers do not overlap calls. Every 16 MiB a flush to disk starts in the
   * background. A failed write leaves the hash unknown (the bytes on disk are uncertain).
   */
  write(chunks: readonly Buffer[]): Promise<void> {
    const writing = this.append(chunks);
    this.writing = writing;
    return writing;
  }

  private async append(chunks: readonly Buffer[]): Promise<void> {
    if (this.done || this.verified) throw internal(`a write to ${this.tempPath} after it was ${this.done ? 'committed or cancelled' : 'verified'}`);
    let length = 0;
    for (const chunk of chunks) length += chunk.length;
    if (this.expectedSize !== undefined && this.bytes + length > this.expectedSize) {
      throw new LongshoreError('LS_CONTENT_MISMATCH', `content for ${this.digest} is longer than its declared ${this.expectedSize} bytes`, { digest: this.digest });
    }
    const hash = this.hash;
    this.hash = undefined; // until every byte is down: a failed write leaves it unknown
    let position = this.bytes;
    // The write starts on the thread pool and the hash runs meanwhile. writev may write fewer bytes
    // than asked (large writes, signals); the loop writes the rest.
    let writing = this.handle.writev(chunks as Buffer[], position);
    if (hash) for (const chunk of chunks) hash.update(chunk);
    for (let offset = 0; ;) {
      const { bytesWritten } = await writing;
      position += bytesWritten;
      offset += bytesWritten;
      if (offset >= length) break;
      writing = this.handle.writev(remainder(chunks, offset), position);
    }
    this.hash = hash;
    this.bytes += length;
    if (this.bytes - this.flushedAt >= FLUSH_EVERY) {
      this.flushedAt = this.bytes;
      this.flushInBackground();
    }
  }

  /**
   * This writer as a Writable, for piping a body in (an upload's chunk). It queues up to `highWaterMark`
   * bytes and writes what queued in one call; once destroyed, it reports 'close' only after the write in
   * progress is down, so that a rollback() after it cannot be overtaken by a late write.
   */
  stream(highWaterMark: number): Writable {
    const settle = (promise: Promise<void>, callback: (err?: Error | null) => void) => void promise.then(() => callback(), callback);
    return new Writable({
      highWaterMark,
      write: (chunk: Buffer, _encoding, callback) => settle(this.write([chunk]), callback),
      writev: (chunks, callback) => settle(this.write(chunks.map((c) => c.chunk as Buffer)), callback),
      destroy: (err, callback) => {
        const settled = this.writing?.catch(() => undefined) ?? Promise.resolve();
        void settled.then(() => callback(err));
      },
    });
  }

  /** Cuts the file back to where this writer started, with the hash it had there: a failed append leaves no trace. */
  async rollback(): Promise<void> {
    await this.writing?.catch(() => undefined);
    this.hash = undefined; // until the cut is done
    await this.handle.truncate(this.base.offset);
    this.bytes = this.base.offset;
    this.flushedAt = Math.min(this.flushedAt, this.bytes);
    this.hash = this.base.hash?.copy();
  }

  /** Checks the bytes written against the digest and size expected from the start; throws LS_CONTENT_MISMATCH. */
  verify(): void {
    const digest = this.digest;
    if (!digest) throw internal(`verify() of ${this.tempPath}, which expects no digest; verifyAs() names one`);
    if (this.expectedSize !== undefined && this.bytes !== this.expectedSize) {
      throw new LongshoreError('LS_CONTENT_MISMATCH', `content for ${digest} has ${this.bytes} bytes, expected ${this.expectedSize}`, { digest, size: this.bytes, expected: this.expectedSize });
    }
    if (!this.hash) throw new LongshoreError('LS_CONTENT_MISMATCH', `content for ${digest} was not all written`, { digest });
    const actual = this.hash.copy().digest();
    if (actual !== digest) {
      throw new LongshoreError('LS_CONTENT_MISMATCH', `content does not match digest ${digest} (got ${actual})`, { digest, actual });
    }
    this.verified = digest;
  }

  /**
   * Checks the bytes written against a digest named only now (a push names it at the end); throws
   * LS_DIGEST_INVALID. Uses the running hash when it is known and of `digest`'s algorithm, otherwise
   * reads the file back once. The running hash is left as it was: a failure other than a mismatch
   * leaves the writer's file resumable.
   */
  async verifyAs(digest: Digest): Promise<void> {
    const actual = this.hashes(digest) ? this.hash!.copy().digest() : await hashFile(this.tempPath, algorithmOf(digest));
    if (actual !== digest) throw new LongshoreError('LS_DIGEST_INVALID', `uploaded content has digest ${actual}, not ${digest}`, { digest, actual });
    this.verified = digest;
  }

  /** Whether verifyAs(digest) can answer from the running hash, without reading the file back. */
  hashes(digest: Digest): boolean {
    return this.hash?.algorithm === algorithmOf(digest);
  }

  /**
   * Starts writing what is written so far to disk, without waiting. A large file flushed only at
   * commit() leaves all its pages dirty until then (the kernel's background writeback starts at a
   * share of RAM), and that one big flush stalls the disk for every other process just as the client
   * has its last byte. Errors are left to sync(), whose own flush reports them.
   */
  private flushInBackground(): void {
    if (this.flushing || this.done || this.closed) return;
    this.flushing = this.handle.datasync().catch(() => undefined).finally(() => {
      this.flushing = undefined;
    });
  }

  /** Flushes the bytes to disk (once). commit() does it if it was not done; an import does it early, then closes the descriptor. */
  async sync(): Promise<void> {
    if (this.synced) return;
    await this.handle.datasync();
    this.synced = true;
    this.flushedAt = this.bytes;
  }

  /** Flushes and moves the verified file to its digest path. */
  async commit(): Promise<void> {
    const digest = this.verified;
    if (!digest) throw internal(`commit of ${this.tempPath} before it was verified`);
    if (this.done) throw internal(`commit of ${this.tempPath} after it was committed or cancelled`);
    if (!this.synced && this.closed) throw internal(`commit of ${this.tempPath}, closed before it was flushed`);
    await this.sync();
    await mkdir(this.paths.contentDir(digest), { recursive: true });
    // If the digest is already stored (another writer won), rename replaces identical bytes: harmless.
    await rename(this.tempPath, this.paths.content(digest));
    this.done = true;
  }

  /** Removes the file; a no-op after commit. */
  async cancel(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await rm(this.tempPath, { force: true });
  }

  /**
   * Closes the descriptor, after a last background flush when FLUSH_ON_CLOSE bytes or more were not
   * flushed yet (so a caller that need not wait for it, an upload's PATCH, does not). The fill that
   * shares the descriptor with readers calls this when the last reader is gone.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.bytes - this.flushedAt >= FLUSH_ON_CLOSE) {
      this.flushedAt = this.bytes;
      this.flushInBackground();
    }
    this.closed = true;
    await this.flushing;
    await this.handle.close().catch(() => undefined);
  }
}

function internal(message: string): LongshoreError {
  return new LongshoreError('LS_INTERNAL', message);
}

function remainder(chunks: readonly Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  for (const chunk of chunks) {
    if (skip >= chunk.length) {
      skip -= chunk.length;
      continue;
    }
    out.push(skip > 0 ? chunk.subarray(skip) : chunk);
    skip = 0;
  }
  return out;
}
