// Local repositories: primary data pushed by clients (distribution-spec "Push" and "Content Management"),
// in the same digest-keyed store as cached content but never evicted. Uploads stream to a file of their
// own (never buffered) through the store's ContentWriter, hashed as they are written, and become visible
// only by its verified rename once the digest the client names matches. Upload sessions are rows in the
// uploads table as well as objects here: a restart resumes them.
// Abuse limits: open sessions per client and per repository, bytes per upload, and a quota on pushed
// content plus open uploads (`local.maxUploadsPerClient`, `maxUploadsPerRepository`, `maxUploadSize`,
// `maxSize`). Chunks are admitted against the last two before they are written, so the disk never holds
// more than the limits allow, also while a body without Content-Length streams in.
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { LongshoreError } from '../errors.js';
import type { LocalRepositoryIndex } from '../metadata/interfaces.js';
import type { LocalUsage } from '../metadata/local-usage.js';
import type { UploadTable } from '../metadata/uploads.js';
import { copyAdmitted } from '../storage/admitted-copy.js';
import type { ContentWriter } from '../storage/content-store.js';
import type { UploadStore } from '../storage/interfaces.js';
import { algorithmOf, CANONICAL_ALGORITHM, Digester, digestOf } from '../digest.js';
import type { LocalContent } from './local-content.js';
import { MANIFEST_TYPES, manifestReferences, type AcceptSet } from './media-types.js';
import { referenceText, type Digest, type Reference } from './reference.js';
import { LOCAL, type RepositoryRef } from './routing.js';
import type { BlobHandle, BlobInfo, ManifestAnswer, ReferrersAnswer, Registry, RequestContext, TagListAnswer, TagListQuery } from './types.js';
import { paginate } from './pagination.js';

/** Tags of local repositories are not negotiated per Accept list: one row, this key. */
const LOCAL_ACCEPT_KEY = '';

export interface UploadSession {
  id: string;
  repository: string;
  /** Who opened it, for local.maxUploadsPerClient: the user name with client auth on, else the remote address. */
  client: string;
  /** Bytes received so far. */
  offset: number;
  touched: number;
  busy: boolean;
  /**
   * The running hash (canonical algorithm) of bytes [0, offset), as they were written, so completing the
   * upload reads nothing back. Absent for a session taken up after a restart: completion then reads the
   * file back once (ContentWriter.verifyAs).
   */
  digester?: Digester | undefined;
}

export interface PushedManifest {
  digest: Digest;
  subject?: string;
}

/**
 * Bytes an upload's file stream queues before the request body is paused. At fs's default (16 KiB) every
 * 64 KiB socket read paused the body until its write came back from the thread pool; with room for a
 * few reads, the stream writes what queued meanwhile in one writev and the socket keeps being read.
 */
const UPLOAD_WRITE_BUFFER = 1024 * 1024;

/** Bound on LocalRegistry.notLocal: names, each up to 255 characters. */
const NOT_LOCAL_NAMES = 10_000;

export class LocalRegistry implements Registry {
  private readonly uploads = new Map<string, UploadSession>();
  /** Open sessions per client and per repository, for the caps; kept with `uploads`. */
  private readonly perClient = new Map<string, number>();
  private readonly perRepository = new Map<string, number>();
  /** Bytes in open upload sessions, chunks being written included: the uploads' share of local.maxSize. */
  private uploadBytes = 0;
  /** Manifests being stored whose bytes this request counts (the first of concurrent identical pushes). */
  private readonly countingManifests = new Set<Digest>();
  /**
   * Names has() found not local. Routing asks for every manifest GET of a cached repository, and the
   * database query was 7 % of the server's CPU under load (bench/NOTES.md §3). A name becomes local only
   * when this process links content to it (recordLocalBlob, putManifest), which empties the set after
   * the link is written; "local" answers are not remembered, so a repository emptied by a delete or gc
   * is seen at once. Bounded: emptied when it reaches NOT_LOCAL_NAMES.
   */
  private readonly notLocal = new Set<string>();

  constructor(
    private readonly local: LocalContent,
    /** What local repositories do to the database (metadata/interfaces.ts). */
    private readonly index: LocalRepositoryIndex,
    /** What upload sessions and releases do to the disk (storage/interfaces.ts). */
    private readonly files: UploadStore,
    private readonly uploadRows: UploadTable,
    private readonly usage: LocalUsage,
    private readonly settings: Config['local'],
    private readonly maxManifestSize: number,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Takes up the upload sessions an earlier run left, before any request: each file is cut back to the
   * bytes its row records (an append that a crash or restart interrupted is dropped; the client resends
   * from the offset it is told), a session whose file is gone is forgotten, and a file without a row is
   * removed. Returns the number of sessions resumed.
   */
  async restore(): Promise<number> {
    const files = new Set(await this.files.uploadIds());
    const kept = new Set<string>();
    for (const row of this.uploadRows.all()) {
      const size = files.has(row.id) ? await this.files.uploadSize(row.id) : undefined;
      if (size === undefined) {
        this.uploadRows.delete(row.id);
        continue;
      }
      let received = row.received;
      if (size > received) await this.files.trimUpload(row.id, received);
      else if (size < received) {
        // The last writes never reached the disk (an OS crash): the file is the truth.
        received = size;
        this.uploadRows.update(row.id, received, row.touched);
      }
      this.track({ id: row.id, repository: row.repository, client: row.client, offset: received, touched: row.touched, busy: false });
      kept.add(row.id);
    }
    for (const id of files) {
      if (!kept.has(id)) await this.files.removeUpload(id);
    }
    if (kept.size > 0) this.log.info({ uploads: kept.size }, 'resumed upload sessions of an earlier run');
    return kept.size;
  }

  // ---- reading ---------------------------------------------------------------------------------

  /** A stored manifest answered from memory, synchronously; undefined when manifest() must do it. */
  manifestHit(repo: RepositoryRef, reference: Reference, _accept: AcceptSet, method: 'GET' | 'HEAD'): ManifestAnswer | undefined {
    const digest = this.resolve(repo, reference);
    const stored = digest && this.local.manifest(digest);
    const answer = stored && this.local.answerInMemory(stored, method, 'hit');
    if (answer) this.local.noteAccess(repo.upstream, repo.name, answer.digest);
    return answer;
  }

  async manifest(repo: RepositoryRef, reference: Reference, _accept: AcceptSet, method: 'GET' | 'HEAD', _ctx: RequestContext): Promise<ManifestAnswer> {
    const digest = this.resolve(repo, reference);
    const stored = digest && this.local.manifest(digest);
    if (!stored) throw notFound('manifest', repo, referenceText(reference));
    this.local.noteAccess(repo.upstream, repo.name, stored.digest);
    const answer = await this.local.answerStored(stored, method, 'hit');
    if (!answer) throw notFound('manifest', repo, referenceText(reference));
    return answer;
  }

  async statBlob(repo: RepositoryRef, digest: Digest, _ctx: RequestContext): Promise<BlobInfo> {
    const size = this.index.hasLink(repo.upstream, repo.name, digest) ? await this.local.blobSize(digest) : undefined;
    if (size === undefined) throw notFound('blob', repo, digest);
    return { digest, size, outcome: 'hit' };
  }

  async openBlob(repo: RepositoryRef, digest: Digest, _ctx: RequestContext): Promise<BlobHandle> {
    const handle = this.index.hasLink(repo.upstream, repo.name, digest) ? await this.local.openBlob(digest) : undefined;
    if (!handle) throw notFound('blob', repo, digest);
    this.local.noteAccess(repo.upstream, repo.name, digest);
    return handle;
  }

  async tags(repo: RepositoryRef, query: TagListQuery, _ctx: RequestContext): Promise<TagListAnswer> {
    const tags = this.index.tagNames(repo.upstream, repo.name);
    if (tags.length === 0 && !this.index.holdsRepository(LOCAL, repo.name)) {
      throw new LongshoreError('LS_NAME_NOT_FOUND', `repository ${repo.name} is not known to this registry`, { repository: repo.name });
    }
    return { name: repo.name, ...paginate(tags, query), outcome: 'hit' };
  }

  /**
   * Whether `name` is a local repository: it holds pushed content, or an upload to it is open (so that
   * the reads of a push in progress, such as a HEAD of a blob just uploaded, stay local).
   */
  has(name: string): boolean {
    if (this.perRepository.has(name)) return true;
    if (this.notLocal.has(name)) return false;
    if (this.index.holdsRepository(LOCAL, name)) return true;
    if (this.notLocal.size >= NOT_LOCAL_NAMES) this.notLocal.clear();
    this.notLocal.add(name);
    return false;
  }

  /** Local repositories, for GET /v2/_catalog. */
  repositories(query: TagListQuery): { repositories: string[]; next?: string } {
    const { tags, next } = paginate(this.index.repositories(LOCAL), query);
    return next === undefined ? { repositories: tags } : { repositories: tags, next };
  }

  /** The manifests whose subject is `digest` (OCI distribution-spec 1.1 referrers). */
  async referrers(repo: RepositoryRef, digest: Digest, artifactType: string | undefined, _ctx?: RequestContext): Promise<ReferrersAnswer> {
    const rows = this.index.referrers(repo.upstream, repo.name, digest)
      .filter((r) => artifactType === undefined || r.artifact_type === artifactType);
    const manifests = rows.map((r) => ({
      mediaType: r.media_type,
      digest: r.manifest,
      size: r.size,
      ...(r.artifact_type ? { artifactType: r.artifact_type } : {}),
      ...(r.annotations ? { annotations: JSON.parse(r.annotations) as unknown } : {}),
    }));
    return { manifests, filtered: artifactType !== undefined, outcome: 'hit' };
  }

  private resolve(repo: RepositoryRef, reference: Reference): Digest | undefined {
    if (reference.kind === 'digest') return this.index.hasLink(repo.upstream, repo.name, reference.digest) ? reference.digest : undefined;
    return this.index.tags(repo.upstream, repo.name, reference.tag).find((r) => r.accept_key === LOCAL_ACCEPT_KEY)?.digest;
  }

  // ---- blob uploads ----------------------------------------------------------------------------

  /** Opens a session for `client` (see UploadSession.client), within the per-client and per-repository caps. */
  async startUpload(repo: RepositoryRef, client: string): Promise<UploadSession> {
    const { maxUploadsPerClient, maxUploadsPerRepository } = this.settings;
    if ((this.perClient.get(client) ?? 0) >= maxUploadsPerClient) {
      throw new LongshoreError('LS_TOO_MANY_UPLOADS', `this client has ${maxUploadsPerClient} open upload sessions, the limit (local.maxUploadsPerClient); finish or cancel one first`,
        { limit: maxUploadsPerClient, setting: 'local.maxUploadsPerClient' });
    }
    if ((this.perRepository.get(repo.name) ?? 0) >= maxUploadsPerRepository) {
      throw new LongshoreError('LS_TOO_MANY_UPLOADS', `${repo.name} has ${maxUploadsPerRepository} open upload sessions, the limit (local.maxUploadsPerRepository); finish or cancel one first`,
        { repository: repo.name, limit: maxUploadsPerRepository, setting: 'local.maxUploadsPerRepository' });
    }
    const id = randomUUID();
    const session: UploadSession = { id, repository: repo.name, client, offset: 0, touched: this.now(), busy: false, digester: new Digester(CANONICAL_ALGORITHM) };
    // Counted before the first await, so that concurrent starts cannot all pass the caps.
    this.track(session);
    try {
      await this.files.createUpload(id);
      this.uploadRows.insert({ id, repository: repo.name, client, received: 0, touched: session.touched });
    } catch (err) {
      this.forget(id);
      throw err;
    }
    return session;
  }

  /** Open upload sessions and the bytes they hold. */
  openUploads(): { sessions: number; bytes: number } {
    return { sessions: this.uploads.size, bytes: this.uploadBytes };
  }

  /** Bytes counted against local.maxSize: content local repositories hold, plus open uploads. */
  usedBytes(): number {
    return this.usage.bytes + this.uploadBytes;
  }

  session(repo: RepositoryRef, id: string): UploadSession {
    const session = this.uploads.get(id);
    if (!session || session.repository !== repo.name) {
      throw new LongshoreError('LS_UPLOAD_UNKNOWN', `upload ${id.slice(0, 64)} is unknown to ${repo.name} (finished, cancelled or expired)`, { upload: id.slice(0, 64) });
    }
    return session;
  }

  /**
   * Appends a chunk. With a Content-Range (`start-end`), the chunk must start at the current offset and
   * be exactly that long; otherwise the upload is left as it was and LS_UPLOAD_RANGE is thrown (416).
   * A chunk that would take the upload past local.maxUploadSize, or pushed content past local.maxSize, is
   * refused (LS_UPLOAD_TOO_LARGE, LS_QUOTA_EXCEEDED) and the upload left as it was: up front when its
   * length is known (`length`, the Content-Length, or the range), without reading the body, which is then
   * left unread; otherwise when the streamed bytes reach the limit, before the chunk that would pass it
   * is written.
   */
  async appendUpload(repo: RepositoryRef, id: string, body: Readable, range?: { start: number; end: number }, length?: number): Promise<UploadSession> {
    const session = this.session(repo, id);
    if (session.busy) throw new LongshoreError('LS_UPLOAD_RANGE', 'another request is writing to this upload', { upload: id });
    if (range && range.start !== session.offset) {
      body.resume();
      throw new LongshoreError('LS_UPLOAD_RANGE', `chunk starts at ${range.start}, but the upload has ${session.offset} bytes`, { offset: session.offset, start: range.start });
    }
    const start = session.offset;
    const announced = range ? range.end - range.start + 1 : length;
    if (announced !== undefined) this.admit(start, 0, announced);
    session.busy = true;
    let written = 0;
    try {
      const writer = await this.files.appendToUpload(id, start, session.digester);
      try {
        await copyAdmitted(body, writer.stream(UPLOAD_WRITE_BUFFER), (bytes) => {
          this.admit(start, written, bytes);
          this.uploadBytes += bytes;
          written += bytes;
        });
        if (range && written !== announced) {
          throw new LongshoreError('LS_UPLOAD_RANGE', `Content-Range announced ${announced} bytes, the body had ${written}`, { offset: start });
        }
      } catch (err) {
        this.uploadBytes -= written;
        // The chunk leaves no trace: the file is cut back to `start`, and the hash is the one it had there
        // (none if the cut failed: the next writer cuts the file, and completion reads it back).
        await writer.rollback().catch(() => undefined);
        throw err;
      } finally {
        session.digester = writer.digester;
        // Not waited for: closing may first flush the chunk to disk, which the response need not wait for.
        void writer.close();
      }
      session.offset = start + written;
      session.touched = this.now();
      this.uploadRows.update(id, session.offset, session.touched);
      return session;
    } finally {
      session.busy = false;
    }
  }

  /** Refuses `adding` more bytes to an upload at `start` that took `written` in this request so far. */
  private admit(start: number, written: number, adding: number): void {
    const { maxUploadSize, maxSize } = this.settings;
    if (start + written + adding > maxUploadSize) {
      throw new LongshoreError('LS_UPLOAD_TOO_LARGE', `an upload may hold at most ${maxUploadSize} bytes (local.maxUploadSize); this chunk was refused and the upload keeps its ${start} bytes`,
        { offset: start, limit: maxUploadSize, setting: 'local.maxUploadSize' });
    }
    if (maxSize !== null && this.usedBytes() + adding > maxSize) throw quotaExceeded(maxSize, start);
  }

  /**
   * Appends an optional last chunk (`length`: its Content-Length, if known; `range`: its Content-Range,
   * checked as for appendUpload), checks the digest, and moves the blob into the store.
   */
  async completeUpload(repo: RepositoryRef, id: string, digest: Digest, body?: Readable, length?: number, range?: { start: number; end: number }): Promise<void> {
    const session = body ? await this.appendUpload(repo, id, body, range, length) : this.session(repo, id);
    if (session.busy) throw new LongshoreError('LS_UPLOAD_RANGE', 'another request is writing to this upload', { upload: id });
    session.busy = true;
    let writer: ContentWriter | undefined;
    try {
      writer = await this.files.appendToUpload(id, session.offset, session.digester);
      if (!writer.hashes(digest)) this.log.debug({ upload: id, bytes: session.offset }, 'reading an upload back to hash it');
      // Hashed while it was written, when the client names a digest of that algorithm (the canonical one,
      // as nearly every push); otherwise read back once. Either way it is checked before the rename.
      await writer.verifyAs(digest);
      if (this.index.content(digest) && (await this.local.blobSize(digest)) === session.offset) await writer.cancel();
      else await writer.commit();
      // The upload's bytes become content's: no net growth, so no quota check (content held already shrinks it).
      this.recordLocalBlob(repo, digest, session.offset);
      this.forget(id);
    } catch (err) {
      // A wrong digest ends the upload (the client starts over); other failures leave it resumable.
      if (err instanceof LongshoreError && err.code === 'LS_DIGEST_INVALID') await this.cancelUpload(repo, id);
      throw err;
    } finally {
      await writer?.close();
      session.busy = false;
    }
  }

  async cancelUpload(repo: RepositoryRef, id: string): Promise<void> {
    this.session(repo, id);
    this.forget(id);
    await this.files.removeUpload(id);
  }

  private track(session: UploadSession): void {
    this.uploads.set(session.id, session);
    this.perClient.set(session.client, (this.perClient.get(session.client) ?? 0) + 1);
    this.perRepository.set(session.repository, (this.perRepository.get(session.repository) ?? 0) + 1);
    this.uploadBytes += session.offset;
  }

  /** Ends a session's bookkeeping: its slots under the caps and its bytes under the quota are free again. */
  private forget(id: string): void {
    const session = this.uploads.get(id);
    if (session) {
      this.uploads.delete(id);
      decrement(this.perClient, session.client);
      decrement(this.perRepository, session.repository);
      this.uploadBytes -= session.offset;
    }
    this.uploadRows.delete(id);
  }

  /** Links a blob into a local repository, counting its bytes if no local repository held it yet. */
  private recordLocalBlob(repo: RepositoryRef, digest: Digest, size: number): void {
    const held = this.usage.holds(digest);
    this.local.recordBlob({ digest, size, upstream: LOCAL, repository: repo.name });
    this.notLocal.clear();
    if (!held) this.usage.added(size);
  }

  /** Cross-repository mount: links a blob `from` holds into `repo`. False when there is nothing to mount. */
  async mount(repo: RepositoryRef, digest: Digest, from: RepositoryRef): Promise<boolean> {
    if (!this.local.holds(from.upstream, from.name, digest)) return false;
    const size = await this.local.blobSize(digest);
    if (size === undefined) return false;
    // Mounting from a proxied repository makes cached content pushed content.
    const { maxSize } = this.settings;
    if (maxSize !== null && !this.usage.holds(digest) && this.usedBytes() + size > maxSize) throw quotaExceeded(maxSize);
    this.recordLocalBlob(repo, digest, size);
    return true;
  }

  /** Removes upload sessions nobody touched for `uploadTimeout`. */
  async sweep(): Promise<number> {
    const cutoff = this.now() - this.settings.uploadTimeout;
    let removed = 0;
    for (const session of [...this.uploads.values()]) {
      if (session.touched >= cutoff || session.busy) continue;
      this.forget(session.id);
      await this.files.removeUpload(session.id);
      removed++;
    }
    if (removed > 0) this.log.info({ removed }, 'removed abandoned uploads');
    return removed;
  }

  // ---- manifests -------------------------------------------------------------------------------

  async putManifest(repo: RepositoryRef, reference: Reference, contentType: string | undefined, body: Buffer): Promise<PushedManifest> {
    if (body.length > this.maxManifestSize) {
      throw new LongshoreError('LS_MANIFEST_TOO_LARGE', `manifest is ${body.length} bytes; the limit is ${this.maxManifestSize}`, { size: body.length, limit: this.maxManifestSize });
    }
    let doc: { mediaType?: unknown; schemaVersion?: unknown; subject?: { digest?: unknown }; artifactType?: unknown; config?: { mediaType?: unknown }; annotations?: unknown };
    try {
      doc = JSON.parse(body.toString('utf8')) as typeof doc;
    } catch {
      throw new LongshoreError('LS_MANIFEST_INVALID', 'manifest is not valid JSON');
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || doc.schemaVersion !== 2) {
      throw new LongshoreError('LS_MANIFEST_INVALID', 'manifest must be a JSON object with schemaVersion 2');
    }
    const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
    const type = (contentType ?? '').split(';', 1)[0]!.trim().toLowerCase();
    const mediaType = declared ?? (MANIFEST_TYPES.includes(type) ? type : undefined);
    if (!mediaType || !MANIFEST_TYPES.includes(mediaType)) {
      throw new LongshoreError('LS_MANIFEST_INVALID', `unsupported manifest media type ${JSON.stringify(declared ?? type)}`);
    }
    if (declared && MANIFEST_TYPES.includes(type) && type !== declared) {
      throw new LongshoreError('LS_MANIFEST_INVALID', `Content-Type ${type} does not match the manifest's mediaType ${declared}`);
    }
    // Pushed by digest, a manifest is named with that digest's algorithm; by tag, with the canonical one.
    const digest = digestOf(body, reference.kind === 'digest' ? algorithmOf(reference.digest) : CANONICAL_ALGORITHM);
    if (reference.kind === 'digest' && reference.digest !== digest) {
      throw new LongshoreError('LS_DIGEST_INVALID', `manifest content has digest ${digest}, not ${reference.digest}`, { digest: reference.digest, actual: digest });
    }
    const refs = manifestReferences(body);
    const subject = typeof doc.subject?.digest === 'string' ? doc.subject.digest : undefined;
    const children = refs.manifests.filter((d) => d !== subject);
    // Non-distributable layers with URLs need not be pushed. They are not recorded as references either:
    // a reference makes content servable under the repository (LocalContent.holds), and naming a digest
    // in a manifest must never be a way to reach content the repository does not hold.
    const external = new Set(refs.external);
    const blobs = refs.blobs.filter((d) => !external.has(d));
    const missing = [...blobs, ...children].filter((d) => !this.index.hasLink(repo.upstream, repo.name, d as Digest));
    if (missing.length > 0) {
      throw new LongshoreError('LS_MANIFEST_BLOB_UNKNOWN', `manifest references ${missing.length} blob(s) or manifest(s) not in ${repo.name}`, { missing: missing.slice(0, 10) });
    }
    // Store and catalog are written across an await: of concurrent identical pushes, the first counts the bytes.
    const counts = !this.usage.holds(digest) && !this.countingManifests.has(digest);
    const { maxSize } = this.settings;
    if (counts && maxSize !== null && this.usedBytes() + body.length > maxSize) throw quotaExceeded(maxSize);
    if (counts) this.countingManifests.add(digest);
    try {
      await this.local.putManifest({ digest, size: body.length, mediaType, upstream: LOCAL, repository: repo.name, refs: { blobs, manifests: children } }, body);
      if (counts) this.usage.added(body.length);
    } finally {
      if (counts) this.countingManifests.delete(digest);
      // After the link, whether or not it was written: a GET during the await may have remembered the name.
      this.notLocal.clear();
    }
    if (reference.kind === 'tag') this.index.putTag(LOCAL, repo.name, reference.tag, LOCAL_ACCEPT_KEY, digest, mediaType);
    if (subject) {
      const artifactType = typeof doc.artifactType === 'string' ? doc.artifactType : typeof doc.config?.mediaType === 'string' ? doc.config.mediaType : undefined;
      this.index.putReferrer(LOCAL, repo.name, subject, digest, mediaType, body.length, artifactType, doc.annotations);
    }
    return subject ? { digest, subject } : { digest };
  }

  /** By digest: the manifest and every tag pointing at it. By tag: only the tag. */
  async deleteManifest(repo: RepositoryRef, reference: Reference): Promise<void> {
    if (reference.kind === 'tag') {
      if (!this.index.deleteTag(LOCAL, repo.name, reference.tag)) throw notFound('manifest', repo, reference.tag);
      return;
    }
    const { digest } = reference;
    if (!this.index.hasLink(LOCAL, repo.name, digest) || !this.local.manifest(digest)) throw notFound('manifest', repo, digest);
    this.index.deleteTagsOf(LOCAL, repo.name, digest);
    this.index.deleteReferrer(LOCAL, repo.name, digest);
    await this.release(repo, digest);
  }

  async deleteBlob(repo: RepositoryRef, digest: Digest): Promise<void> {
    if (!this.settings.allowBlobDelete) {
      throw new LongshoreError('LS_UNSUPPORTED', 'deleting blobs is disabled on this registry (local.allowBlobDelete)');
    }
    if (!this.index.hasLink(LOCAL, repo.name, digest)) throw notFound('blob', repo, digest);
    await this.release(repo, digest);
  }

  /**
   * Garbage collection: blobs pushed to a local repository that no manifest there references. Only blobs
   * older than the upload timeout go, so a push whose manifest has not arrived yet is left alone.
   */
  async collectGarbage(): Promise<{ released: number }> {
    const orphans = this.index.unreferencedBlobs(LOCAL, this.now() - this.settings.uploadTimeout);
    for (const { repository, digest } of orphans) await this.release({ upstream: LOCAL, name: repository }, digest);
    if (orphans.length > 0) this.log.info({ released: orphans.length }, 'released unreferenced local blobs');
    return { released: orphans.length };
  }

  /** Drops a repository's hold on content; content nobody holds any more is removed from the store. */
  private async release(repo: RepositoryRef, digest: Digest): Promise<void> {
    const size = this.index.contentInfo(digest)?.size ?? 0;
    const holders = this.index.unlink(LOCAL, repo.name, digest);
    if (!this.usage.holds(digest)) this.usage.removed(size);
    if (holders > 0) return;
    await this.files.delete(digest);
    this.index.removeContent(digest);
    this.local.forget(digest);
  }
}

function quotaExceeded(limit: number, offset?: number): LongshoreError {
  return new LongshoreError('LS_QUOTA_EXCEEDED', `pushed content and open uploads may hold at most ${limit} bytes (local.maxSize); delete content or cancel uploads to make room`,
    { limit, setting: 'local.maxSize', ...(offset === undefined ? {} : { offset }) });
}

function decrement(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left > 0) counts.set(key, left);
  else counts.delete(key);
}

function notFound(kind: 'manifest' | 'blob', repo: RepositoryRef, reference: string): LongshoreError {
  return kind === 'manifest'
    ? new LongshoreError('LS_MANIFEST_NOT_FOUND', `manifest ${repo.name}${reference.includes(':') ? '@' : ':'}${reference} not found`, { repository: repo.name, reference })
    : new LongshoreError('LS_BLOB_NOT_FOUND', `blob ${reference} not found in ${repo.name}`, { repository: repo.name, digest: reference });
}
