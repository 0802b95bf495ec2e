// What each layer above may do to the content store on disk: one narrow interface per consumer, each
// implemented by ContentStore (content-store.ts), handed to its consumer by the composition root
// (core.ts). Paths stay inside storage/: paths.ts alone knows the layout.
import type { Digest, Digester } from '../digest.js';
import type { ChunkPool } from './chunk-pool.js';
import type { ContentWriter, StoredContent } from './content-store.js';

/** LocalContent (registry/local-content.ts): reading, writing and removing content by digest. */
export interface ContentFiles {
  /** Read buffers shared by every stream of stored or downloading content. */
  readonly chunks: ChunkPool;
  size(digest: Digest): Promise<number | undefined>;
  open(digest: Digest): Promise<StoredContent | undefined>;
  read(digest: Digest): Promise<Buffer | undefined>;
  put(digest: Digest, body: Buffer): Promise<void>;
  createWriter(digest: Digest, expectedSize: number | undefined): Promise<ContentWriter>;
  delete(digest: Digest): Promise<boolean>;
}

/**
 * Upload sessions of local repositories (registry/local-registry.ts): a file per session, appended to and
 * committed through a ContentWriter. `id` is always a session id this process generated (a UUID), never a client's text.
 */
export interface UploadStore {
  /** The ids of the upload files present, for taking sessions up after a restart. */
  uploadIds(): Promise<string[]>;
  uploadSize(id: string): Promise<number | undefined>;
  /** Cuts a file back to the bytes its session counts. */
  trimUpload(id: string, size: number): Promise<void>;
  createUpload(id: string): Promise<void>;
  /** A writer appending from `offset`, with the running hash of the bytes before it when that is known. */
  appendToUpload(id: string, offset: number, digester: Digester | undefined): Promise<ContentWriter>;
  removeUpload(id: string): Promise<void>;
  /** Removes content no local repository holds any more. */
  delete(digest: Digest): Promise<boolean>;
}

/**
 * Reconciliation of files with rows (cache/recovery.ts, and gc's in jobs/admin-jobs.ts) and verify:
 * every file, re-hashing, removing, quarantining.
 */
export interface MaintenanceStore {
  /** Every content file with its size, by digest. */
  list(): Promise<Map<Digest, number>>;
  /** The same walk a directory at a time, by name only, for a walk that must not hold the event loop. */
  contentDirectories(): AsyncGenerator<Digest[]>;
  size(digest: Digest): Promise<number | undefined>;
  /** Size and modification time of a stored regular file. */
  stat(digest: Digest): Promise<{ size: number; mtimeMs: number } | undefined>;
  /** The digest of the stored bytes, computed with `digest`'s algorithm. */
  hash(digest: Digest): Promise<Digest>;
  delete(digest: Digest): Promise<boolean>;
  /** Moves a corrupt file aside (quarantine/, paths.ts). */
  quarantine(digest: Digest): Promise<void>;
}
