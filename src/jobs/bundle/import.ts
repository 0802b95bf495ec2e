// Reads a bundle (this project's, or any OCI image layout archive such as `skopeo copy …
// oci-archive:FILE:REF` writes) and stores its images as cached content of the registry and repository
// their `org.opencontainers.image.ref.name` names, with their tags.
//
// Nothing becomes visible until it is verified. Each blob entry is hashed while it is written to a temp
// file of the store (its digest and size are checked against its path and tar header); the archive is
// read to its end before anything else happens, because index.json may come last. Then, image by image,
// the whole closure (manifests and the chosen platforms' blobs) must be present — in the bundle or,
// for an incremental bundle, already in this mirror — before its files are moved into place and its
// rows, links and tag are written, in one synchronous step no request can interleave with. A bundle
// cut short or with one wrong byte fails naming the entry; its staged files are removed.
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { LongshoreError, isLongshoreError } from '../../errors.js';
import type { LocalContent } from '../../registry/local-content.js';
import { INDEX_TYPES, MediaType, declaredMediaType, manifestReferences } from '../../registry/media-types.js';
import { REFERRERS_KEY } from '../../registry/proxy.js';
import type { ContentWriter } from '../../storage/content-store.js';
import { parseDigest, type Digest } from '../../registry/reference.js';
import type { RepositoryRef, UpstreamRouter } from '../../registry/routing.js';
import { parseImageRef, type ImageRef } from '../image-ref.js';
import { ACCEPT_ALL } from '../warm.js';
import { BUNDLE_JSON, INDEX_JSON, OCI_LAYOUT, REFERRERS_REPOSITORY, REFERRER_SUBJECT, REF_NAME, digestOfPath, type BundleInfo } from './layout.js';
import { readTar } from './tar.js';

/** index.json, oci-layout and longshore-bundle.json are read into memory, up to this size. */
const MAX_METADATA = 64 * 1024 * 1024;
/** Bytes gathered before a blob's temp file is written to. */
const WRITE_BATCH = 1024 * 1024;
/**
 * Staged blobs being flushed to disk (fdatasync) at once, behind the reading of the archive. Waiting for
 * each flush before reading the next entry made an import of many small blobs pay one disk round trip
 * per blob in series (bench/NOTES.md §8); this many open descriptors bound the overlap.
 */
const MAX_FLUSHING = 16;

export interface ImportDeps {
  local: LocalContent;
  router: UpstreamRouter;
  maxManifestSize: number;
  log: Logger;
}

export interface ImportedImage {
  ref: string;
  digest?: Digest;
  manifests?: number;
  blobs?: number;
  bytes?: number;
  /** Bytes this mirror did not hold before. */
  newBytes?: number;
  error?: { code: string; message: string };
}

/** A subject's referrers list (export --with-referrers), stored for one repository. */
export interface ImportedReferrers {
  subject: string;
  /** "docker.io/library/node"; absent when no repository of the bundle holds the subject. */
  repository?: string;
  /** Referrer manifests the list names. */
  referrers?: number;
  error?: { code: string; message: string };
}

export interface ImportResult {
  images: ImportedImage[];
  /** Referrers lists the bundle carried (layout.ts), after its images. */
  referrers: ImportedReferrers[];
  /** Entries read from the archive and their bytes. */
  blobs: number;
  bytes: number;
}

export interface ImportOptions {
  signal?: AbortSignal | undefined;
  onBytes?: ((n: number) => void) | undefined;
  onImage?: ((image: ImportedImage) => void) | undefined;
  onReferrers?: ((list: ImportedReferrers) => void) | undefined;
}

interface Staged {
  /** Verified, flushed (or being flushed) and closed: committing it is a rename. */
  writer: ContentWriter;
  size: number;
}

export async function importBundle(source: AsyncIterable<Buffer>, deps: ImportDeps, options: ImportOptions = {}): Promise<ImportResult> {
  const staged = new Map<Digest, Staged>();
  const metadata = new Map<string, Buffer>();
  const flushes = new Flushes(MAX_FLUSHING);
  let bytes = 0;
  let blobs = 0;
  try {
    for await (const entry of readTar(source)) {
      options.signal?.throwIfAborted();
      if (entry.type !== 'file') continue;
      if (entry.name === OCI_LAYOUT || entry.name === INDEX_JSON || entry.name === BUNDLE_JSON) {
        if (entry.size > MAX_METADATA) throw invalid(entry.name, `is ${entry.size} bytes, more than the ${MAX_METADATA} allowed`);
        const parts: Buffer[] = [];
        for await (const chunk of entry.body()) parts.push(Buffer.from(chunk));
        metadata.set(entry.name, Buffer.concat(parts));
        continue;
      }
      const path = digestOfPath(entry.name);
      if (path === undefined) continue; // not part of an image layout; never interpreted as a path
      let digest: Digest;
      try {
        digest = parseDigest(path);
      } catch (err) {
        throw invalid(entry.name, `cannot be stored: ${(err as Error).message}`);
      }
      const writer = await deps.local.createWriter(digest, entry.size);
      try {
        // Network chunks are small (16–64 KiB): one write per MiB instead of one per chunk.
        let batch: Buffer[] = [];
        let batched = 0;
        for await (const chunk of entry.body()) {
          batch.push(chunk);
          batched += chunk.length;
          bytes += chunk.length;
          options.onBytes?.(chunk.length);
          if (batched >= WRITE_BATCH) {
            // A large blob's pages go to disk as it is read (the writer flushes in the background), not all in its final flush.
            await writer.write(batch);
            batch = [];
            batched = 0;
          }
        }
        if (batch.length > 0) await writer.write(batch);
        writer.verify();
      } catch (err) {
        await writer.cancel();
        await writer.close();
        throw invalid(entry.name, `is damaged: ${(err as Error).message}`, isLongshoreError(err) ? err.detail : undefined);
      }
      // Flushed while the next entries are read; all flushes are done before anything is committed.
      await flushes.add(writer, entry.name);
      const earlier = staged.get(digest);
      if (earlier) await earlier.writer.cancel();
      else blobs++;
      staged.set(digest, { writer, size: entry.size });
    }
    await flushes.drain();
    options.signal?.throwIfAborted();
    const layout = parseJson(metadata.get(OCI_LAYOUT), OCI_LAYOUT) as { imageLayoutVersion?: unknown };
    if (typeof layout.imageLayoutVersion !== 'string') throw invalid(OCI_LAYOUT, 'has no imageLayoutVersion');
    const index = parseJson(metadata.get(INDEX_JSON), INDEX_JSON) as { manifests?: unknown };
    if (!Array.isArray(index.manifests)) throw invalid(INDEX_JSON, 'lists no manifests');
    const info = metadata.has(BUNDLE_JSON) ? parseJson(metadata.get(BUNDLE_JSON), BUNDLE_JSON) as Partial<BundleInfo> : undefined;
    const omitted = new Set((Array.isArray(info?.omitted) ? info.omitted : []).map((o) => String(o?.digest)));

    const images: ImportedImage[] = [];
    const committer = new Committer(deps, staged, omitted);
    type IndexEntry = { digest?: unknown; mediaType?: unknown; size?: unknown; annotations?: Record<string, unknown> };
    const entries = index.manifests as IndexEntry[];
    // Referrers lists (no ref.name, a referrer.subject) go after the images their subjects belong to.
    const isList = (entry: IndexEntry) => entry?.annotations?.[REF_NAME] === undefined && typeof entry?.annotations?.[REFERRER_SUBJECT] === 'string';
    for (const entry of entries.filter((e) => !isList(e))) {
      options.signal?.throwIfAborted();
      const name = entry?.annotations?.[REF_NAME];
      let image: ImportedImage;
      try {
        if (typeof name !== 'string') throw invalid(INDEX_JSON, `has a manifest (${String(entry?.digest).slice(0, 80)}) without an ${REF_NAME} annotation: its repository is unknown`);
        image = await committer.commit(parseImageRef(name, deps.router), entry);
      } catch (err) {
        if (!isLongshoreError(err)) throw err;
        image = { ref: typeof name === 'string' ? name : String(entry?.digest), error: { code: err.code, message: err.message } };
      }
      images.push(image);
      options.onImage?.(image);
    }
    const referrers: ImportedReferrers[] = [];
    for (const entry of entries.filter(isList)) {
      options.signal?.throwIfAborted();
      for (const list of await committer.commitReferrers(entry, entry.annotations![REFERRER_SUBJECT] as string, entry.annotations![REFERRERS_REPOSITORY])) {
        referrers.push(list);
        options.onReferrers?.(list);
      }
    }
    return { images, referrers, blobs, bytes };
  } finally {
    // Whatever was not moved into place (unused, or the import failed) goes, once no flush holds it open.
    await flushes.drain().catch(() => undefined);
    await Promise.all([...staged.values()].map((s) => s.writer.cancel()));
  }
}

/**
 * Flushes of verified temp files running behind the archive's reading: add() starts one (waiting for a
 * place when MAX_FLUSHING are running), drain() waits for all and throws the first failure, naming its
 * entry. A file's rows are written only after drain(): nothing is recorded that a crash could lose.
 */
class Flushes {
  private readonly running = new Set<Promise<void>>();
  private failure: LongshoreError | undefined;

  constructor(private readonly limit: number) {}

  async add(writer: ContentWriter, entry: string): Promise<void> {
    while (this.running.size >= this.limit) await Promise.race(this.running);
    this.check();
    const flush = writer.sync()
      .catch((err: unknown) => {
        this.failure ??= invalid(entry, `cannot be written to disk: ${(err as Error).message}`);
      })
      .finally(() => writer.close())
      .finally(() => this.running.delete(flush));
    this.running.add(flush);
  }

  async drain(): Promise<void> {
    await Promise.all(this.running);
    this.check();
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }
}

interface Closure {
  manifests: Array<{ digest: Digest; mediaType: string; size: number; body: Buffer }>;
  blobs: Map<Digest, number>;
}

class Committer {
  /** Repositories that images of this bundle were committed to, by each manifest of theirs. */
  private readonly committedIn = new Map<Digest, RepositoryRef[]>();

  constructor(private readonly deps: ImportDeps, private readonly staged: Map<Digest, Staged>, private readonly omitted: ReadonlySet<string>) {}

  /**
   * Stores a subject's referrers list for the repository the entry names or, in a bundle that names
   * none (another tool's, after image-spec PR #1171), for each repository an image of this bundle holding
   * the subject went to; then records it as the mirror records a list fetched from an upstream (a
   * resolution of the subject under REFERRERS_KEY, proxy.ts), so an offline mirror answers the referrers
   * API from it. Every referrer it names must be carried or held here: a list is never half imported.
   */
  async commitReferrers(entry: { digest?: unknown; mediaType?: unknown; size?: unknown }, subjectText: string, named: unknown): Promise<ImportedReferrers[]> {
    let subject: Digest;
    let repos: RepositoryRef[];
    try {
      subject = parseDigest(subjectText);
      repos = typeof named === 'string' ? [parseImageRef(`${named}@${subject}`, this.deps.router).repo] : this.committedIn.get(subject) ?? [];
    } catch (err) {
      if (!isLongshoreError(err)) throw err;
      return [{ subject: subjectText.slice(0, 200), error: { code: err.code, message: `${INDEX_JSON}: a referrers list for ${subjectText.slice(0, 200)}: ${err.message}` } }];
    }
    if (repos.length === 0) {
      return [{ subject, error: { code: 'LS_BUNDLE_CONTENT_MISSING', message: `the referrers list of ${subject} belongs to no image of this bundle; it was not imported` } }];
    }
    const out: ImportedReferrers[] = [];
    for (const repo of repos) {
      const repository = `${repo.upstream}/${repo.name}`;
      try {
        const { local } = this.deps;
        if (!local.holds(repo.upstream, repo.name, subject) || (await local.blobSize(subject)) === undefined) {
          throw new LongshoreError('LS_BUNDLE_CONTENT_MISSING', `${repository}@${subject}: the bundle carries referrers of a manifest this repository does not hold; import the image first`, { reference: `${repository}@${subject}` });
        }
        const list = parseDigest(String(entry.digest));
        const body = await this.body(list);
        if (!body) throw invalid(`blobs/${list.replace(':', '/')}`, `is missing: the referrers list of ${repository}@${subject}`);
        const children = indexChildren(body);
        const absent: Digest[] = [];
        for (const child of children) if (!(await this.available(child.digest))) absent.push(child.digest);
        if (absent.length > 0) {
          if (absent.some((d) => this.omitted.has(d))) {
            throw new LongshoreError('LS_BUNDLE_CONTENT_MISSING', `${repository}@${subject}: this incremental bundle left out referrer(s) this mirror does not hold (${absent.slice(0, 3).join(', ')}); import the bundle that carried them first`, { reference: `${repository}@${subject}`, missing: absent.slice(0, 100) });
          }
          throw invalid(`blobs/${absent[0]!.replace(':', '/')}`, `is missing: the referrers list of ${repository}@${subject} names it`);
        }
        await this.commit({ repo, reference: { kind: 'digest', digest: list }, full: `${repository}@${list}` }, { ...entry, mediaType: MediaType.OciIndex });
        // Like the bundle's tags: its answer replaces whatever list was cached for the subject.
        local.putTag(repo.upstream, repo.name, subject, REFERRERS_KEY, list, MediaType.OciIndex);
        out.push({ subject, repository, referrers: children.length });
      } catch (err) {
        if (!isLongshoreError(err)) throw err;
        out.push({ subject, repository, error: { code: err.code, message: err.message } });
      }
    }
    return out;
  }

  async commit(ref: ImageRef, entry: { digest?: unknown; mediaType?: unknown; size?: unknown }): Promise<ImportedImage> {
    const root = parseDigest(String(entry.digest));
    if (ref.reference.kind === 'digest' && ref.reference.digest !== root) throw invalid(INDEX_JSON, `names ${ref.full} for manifest ${root}`);
    const closure: Closure = { manifests: [], blobs: new Map() };
    const missing: string[] = [];
    await this.walk(root, typeof entry.mediaType === 'string' ? entry.mediaType : undefined, typeof entry.size === 'number' ? entry.size : undefined, closure, missing, 0);
    if (missing.length > 0) {
      const left = missing.filter((d) => this.omitted.has(d));
      if (left.length > 0) {
        throw new LongshoreError('LS_BUNDLE_CONTENT_MISSING', `${ref.full}: this incremental bundle left out ${left.length} blob(s) that this mirror does not hold (${left.slice(0, 3).join(', ')}${left.length > 3 ? ', …' : ''}); import the bundle that carried them first`, { reference: ref.full, missing: left.slice(0, 100) });
      }
      throw invalid(`blobs/${missing[0]!.replace(':', '/')}`, `is missing: ${ref.full} needs it (${missing.length} missing in all)`);
    }
    const { local } = this.deps;
    const { upstream, name } = ref.repo;
    let newBytes = 0;
    let bytes = 0;
    // Files into place first (each already verified)...
    const moves: Array<Promise<void>> = [];
    const sizes = new Map<Digest, number>();
    for (const digest of [...closure.blobs.keys(), ...closure.manifests.map((m) => m.digest)]) {
      const staged = this.staged.get(digest);
      if (staged) {
        this.staged.delete(digest);
        sizes.set(digest, staged.size);
        if (!local.isStored(digest)) newBytes += staged.size;
        moves.push(staged.writer.commit());
      } else {
        sizes.set(digest, closure.blobs.get(digest) ?? (await local.blobSize(digest)) ?? 0);
      }
    }
    await Promise.all(moves);
    // ...then every row, link and the tag in one synchronous step: a request sees all of the image or none.
    for (const [digest] of closure.blobs) {
      bytes += sizes.get(digest)!;
      local.recordContent({ digest, size: sizes.get(digest)!, upstream, repository: name });
      local.link(upstream, name, digest);
    }
    for (const manifest of [...closure.manifests].reverse()) {
      bytes += manifest.size;
      local.recordContent({ digest: manifest.digest, size: manifest.size, mediaType: manifest.mediaType, upstream, repository: name, refs: manifestReferences(manifest.body) });
      local.link(upstream, name, manifest.digest);
    }
    for (const manifest of closure.manifests) {
      const repos = this.committedIn.get(manifest.digest) ?? [];
      if (!repos.some((r) => r.upstream === upstream && r.name === name)) this.committedIn.set(manifest.digest, [...repos, ref.repo]);
    }
    if (ref.reference.kind === 'tag') {
      // The bundle's answer replaces every earlier resolution of the tag, whatever Accept list asked.
      local.deleteTag(upstream, name, ref.reference.tag);
      local.putTag(upstream, name, ref.reference.tag, ACCEPT_ALL.key, root, closure.manifests[0]!.mediaType);
    }
    local.announceGrowth();
    return { ref: ref.full, digest: root, manifests: closure.manifests.length, blobs: closure.blobs.size, bytes, newBytes };
  }

  private async walk(digest: Digest, declaredType: string | undefined, declaredSize: number | undefined, closure: Closure, missing: string[], depth: number): Promise<boolean> {
    const body = await this.body(digest);
    if (!body) {
      missing.push(digest);
      return false;
    }
    if (declaredSize !== undefined && body.length !== declaredSize) throw invalid(`blobs/${digest.replace(':', '/')}`, `is ${body.length} bytes; its descriptor says ${declaredSize}`);
    const mediaType = declaredMediaType(body) ?? declaredType;
    if (mediaType === undefined) throw invalid(`blobs/${digest.replace(':', '/')}`, 'is named as a manifest but declares no media type');
    closure.manifests.push({ digest, mediaType, size: body.length, body });
    const refs = manifestReferences(body);
    if (INDEX_TYPES.has(mediaType)) {
      if (depth >= 4) return true;
      // An index is kept whole; the platforms whose manifests the bundle carries are imported.
      const children = indexChildren(body);
      let present = 0;
      for (const child of children) {
        if (!(await this.available(child.digest))) continue;
        if (await this.walk(child.digest, child.mediaType, child.size, closure, missing, depth + 1)) present++;
      }
      if (present === 0) missing.push(...children.map((c) => c.digest).slice(0, 1));
      return true;
    }
    for (const blob of refs.blobs) {
      const child = parseDigest(blob);
      if (closure.blobs.has(child)) continue;
      const size = this.staged.get(child)?.size ?? (await this.deps.local.blobSize(child));
      if (size === undefined) {
        missing.push(child);
        continue;
      }
      closure.blobs.set(child, size);
    }
    return true;
  }

  private async available(digest: Digest): Promise<boolean> {
    return this.staged.has(digest) || (await this.deps.local.blobSize(digest)) !== undefined;
  }

  /** A manifest's bytes: from the bundle, or already stored here. */
  private async body(digest: Digest): Promise<Buffer | undefined> {
    const staged = this.staged.get(digest);
    if (staged) {
      if (staged.size > this.deps.maxManifestSize) throw invalid(`blobs/${digest.replace(':', '/')}`, `is named as a manifest but is ${staged.size} bytes, more than maxManifestSize`);
      return readFile(staged.writer.tempPath);
    }
    if ((await this.deps.local.blobSize(digest)) === undefined) return undefined;
    return this.deps.local.readStored(digest);
  }
}

function indexChildren(body: Buffer): Array<{ digest: Digest; mediaType: string | undefined; size: number | undefined }> {
  const doc = JSON.parse(body.toString('utf8')) as { manifests?: Array<{ digest?: unknown; mediaType?: unknown; size?: unknown }> };
  const out = [];
  for (const m of Array.isArray(doc.manifests) ? doc.manifests : []) {
    if (typeof m?.digest !== 'string') continue;
    let digest: Digest;
    try {
      digest = parseDigest(m.digest);
    } catch {
      continue; // another algorithm: not something this mirror stores
    }
    out.push({ digest, mediaType: typeof m.mediaType === 'string' ? m.mediaType : undefined, size: typeof m.size === 'number' ? m.size : undefined });
  }
  return out;
}

function parseJson(body: Buffer | undefined, name: string): unknown {
  if (!body) throw invalid(name, 'is missing: this is not an OCI image layout archive, or it was cut short');
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8')) as unknown;
  } catch (err) {
    throw invalid(name, `is not valid JSON (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null) throw invalid(name, 'is not valid JSON (not an object)');
  return doc;
}

function invalid(entry: string, what: string, detail?: Record<string, unknown>): LongshoreError {
  return new LongshoreError('LS_BUNDLE_INVALID', `bundle entry ${entry} ${what}`, { ...detail, entry });
}
