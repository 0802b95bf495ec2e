// The on-disk layout. This is the only module that knows it.
//
//   <dataDir>/
//     longshore.db                 SQLite metadata (WAL mode: also longshore.db-wal, longshore.db-shm)
//     blobs/<algorithm>/<aa>/<hex> verified content, blobs and manifests alike, keyed by digest
//                                  "<algorithm>:<hex>" (registry/digest.ts: sha256, sha512); <aa> is
//                                  the first two hex digits. Content of two algorithms never shares a
//                                  directory, and a store written before sha512 existed is unchanged.
//     tmp/<random>                 content being written; renamed into blobs/ only after its digest
//                                  and size are verified. Same filesystem as blobs/, so the rename is
//                                  atomic. Anything left here at start-up is a crash leftover.
//     uploads/<id>                 blob uploads to local repositories in progress, one file per
//                                  session (its row is in the uploads table); kept across restarts
//     longshore.lock               who owns the directory (storage/data-lock.ts): the serving mirror, or
//                                  an admin command while none serves it
//     admin.token                  the serving mirror's admin token (mode 0600, new at each start): admin
//                                  commands send it with their jobs (http/jobs-router.ts)
//     quarantine/<hex>             files `verify --quarantine` found corrupt
//     auth/token-signing-key.pem   private key that signs client tokens (auth.enabled without
//                                  auth.signingKeyFile); generated at first start, mode 0600
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { algorithmOf, encodedOf, type Digest, type DigestAlgorithm } from '../digest.js';

export class StorePaths {
  readonly root: string;
  /** The directory of every algorithm's content directory. */
  readonly blobs: string;
  readonly tmp: string;
  readonly uploads: string;
  readonly database: string;
  readonly tokenSigningKey: string;
  readonly lock: string;
  readonly adminToken: string;
  /** Where `verify --quarantine` moves files found corrupt. */
  readonly quarantineDir: string;

  constructor(dataDir: string) {
    this.root = resolve(dataDir);
    this.blobs = join(this.root, 'blobs');
    this.tmp = join(this.root, 'tmp');
    this.uploads = join(this.root, 'uploads');
    this.database = join(this.root, 'longshore.db');
    this.tokenSigningKey = join(this.root, 'auth', 'token-signing-key.pem');
    this.lock = join(this.root, 'longshore.lock');
    this.adminToken = join(this.root, 'admin.token');
    this.quarantineDir = join(this.root, 'quarantine');
  }

  /** Callers pass digests validated by registry/digest.ts: a registered algorithm and lower-case hex. */
  content(digest: Digest): string {
    const hex = encodedOf(digest);
    return join(this.algorithmDir(algorithmOf(digest)), hex.slice(0, 2), hex);
  }

  contentDir(digest: Digest): string {
    return join(this.algorithmDir(algorithmOf(digest)), encodedOf(digest).slice(0, 2));
  }

  /** blobs/<algorithm>: the content of one digest algorithm. */
  algorithmDir(algorithm: DigestAlgorithm): string {
    return join(this.blobs, algorithm);
  }

  /** `id` is a session id this process generated (a UUID), never a client's text. */
  upload(id: string): string {
    return join(this.uploads, id);
  }

  /** quarantine/<hex>: where a corrupt file of `digest` is kept for inspection. */
  quarantine(digest: Digest): string {
    return join(this.quarantineDir, encodedOf(digest));
  }

  /** A leftover of tmp/ by its directory entry's name (ContentStore.init removes them). */
  tempNamed(name: string): string {
    return join(this.tmp, name);
  }

  newTemp(): string {
    return join(this.tmp, randomBytes(12).toString('hex'));
  }
}
