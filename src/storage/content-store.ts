// The digest-keyed content store. Content becomes visible only through ContentWriter.commit():
// bytes go to a temp file while their digest is computed (with the digest's own algorithm), the digest and size are checked, the file is
// flushed, and only then renamed to its digest path (atomic: same filesystem). A reader therefore
// never sees a partial or unverified file under a digest path.
import { createReadStream, read } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { LongshoreError } from '../errors.js';
import { algorithmOf, DIGEST_ALGORITHMS, Digester, isEncoded, type Digest, type DigestAlgorithm } from '../digest.js';
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
    const leftovers = await readdir(this.paths.tmp);
    await Promise.all(leftovers.map((name) => rm(this.paths.tempNamed(name), { force: true, recursive: true })));
    return leftovers.length;
  }

  get uploadDir(): string {
    return this.paths.uploads;
  }

  uploadPath(id: string): string {
    return this.paths.upload(id);
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

  async createWriter(digest: Digest, expectedSize: number | undefined): Promise<ContentWriter> {
    const tempPath = this.paths.newTemp();
    // wx+: fail if the name exists; readable too, so followers of a download read the same descriptor.
    const handle = await open(tempPath, 'wx+', 0o644);
    return new ContentWriter(this.paths, digest, expectedSize, tempPath, handle);
  }

  /** Moves a file already verified to hold `digest` (a finished upload) into place. */
  async adopt(tempPath: string, digest: Digest): Promise<void> {
    await mkdir(this.paths.contentDir(digest), { recursive: true });
    await rename(tempPath, this.paths.content(digest));
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

/**
 * A temp file being filled with the bytes of one digest. write() hashes as it writes; verify() checks
 * digest and size; commit() flushes and renames into place; cancel() removes the temp file.
 */
export class ContentWriter {
  private readonly hash: Digester;
  private bytes = 0;
  private done = false;
  private flushing = false;

  constructor(
    private readonly paths: StorePaths,
    readonly digest: Digest,
    readonly expectedSize: number | undefined,
    readonly tempPath: string,
    readonly handle: FileHandle,
  ) {
    this.hash = new Digester(algorithmOf(digest));
  }

  get written(): number {
    return this.bytes;
  }

  /** Appends chunks in order. Callers do not overlap calls. */
  async write(chunks: readonly Buffer[]): Promise<void> {
    let length = 0;
    for (const chunk of chunks) {
      this.hash.update(chunk);
      length += chunk.length;
    }
    if (this.expectedSize !== undefined && this.bytes + length > this.expectedSize) {
      throw new LongshoreError('LS_CONTENT_MISMATCH', `content for ${this.digest} is longer than its declared ${this.expectedSize} bytes`, { digest: this.digest });
    }
    let position = this.bytes;
    let offset = 0;
    // writev may write fewer bytes than asked (large writes, signals); loop until all are down.
    let pending = chunks;
    while (length - offset > 0) {
      const { bytesWritten } = await this.handle.writev(pending as Buffer[], position);
      position += bytesWritten;
      offset += bytesWritten;
      if (offset < length) pending = remainder(chunks, offset);
    }
    this.bytes += length;
  }

  /** Throws LS_CONTENT_MISMATCH unless the bytes written have the expected digest and size. */
  verify(): void {
    if (this.expectedSize !== undefined && this.bytes !== this.expectedSize) {
      throw new LongshoreError('LS_CONTENT_MISMATCH', `content for ${this.digest} has ${this.bytes} bytes, expected ${this.expectedSize}`, { digest: this.digest, size: this.bytes, expected: this.expectedSize });
    }
    const actual = this.hash.digest();
    if (actual !== this.digest) {
      throw new LongshoreError('LS_CONTENT_MISMATCH', `content does not match digest ${this.digest} (got ${actual})`, { digest: this.digest, actual });
    }
  }

  /**
   * Starts writing what is written so far to disk, without waiting. A large download flushed only at
   * commit() leaves all its pages dirty until then (the kernel's background writeback starts at a
   * share of RAM), and that one big flush stalls the disk for every other process just as the client
   * has its last byte. Errors are left to commit(), whose own flush reports them.
   */
  flushInBackground(): void {
    if (this.flushing || this.done) return;
    this.flushing = true;
    this.handle.datasync().catch(() => undefined).finally(() => {
      this.flushing = false;
    });
  }

  /** Flushes and moves the verified temp file to its digest path. Call only after verify(). */
  async commit(): Promise<void> {
    await this.handle.datasync();
    await mkdir(this.paths.contentDir(this.digest), { recursive: true });
    // If the digest is already stored (another writer won), rename replaces identical bytes: harmless.
    await rename(this.tempPath, this.paths.content(this.digest));
    this.done = true;
  }

  /** Removes the temp file; a no-op after commit. */
  async cancel(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await rm(this.tempPath, { force: true });
  }

  /** Closes the descriptor. The fill that shares it with readers calls this when the last reader is gone. */
  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
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
