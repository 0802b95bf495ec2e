// Content digests (OCI image-spec "Digests"): `<algorithm>:<encoded>`. This is the one module that knows
// which algorithms exist; everything else (store paths, verification, upstream headers, manifests) asks
// it. sha256 is canonical: what a manifest pushed by tag or fetched without a digest is named by. sha512
// is registered by the image-spec too and served wherever sha256 is. Adding an algorithm is one entry in
// ALGORITHMS, as long as node:crypto has its hash and the encoding is lower-case hex.
import { createHash, type Hash } from 'node:crypto';
import { LongshoreError } from './errors.js';

const ALGORITHMS = {
  sha256: { hash: 'sha256', hexLength: 64 },
  sha512: { hash: 'sha512', hexLength: 128 },
} as const;

export type DigestAlgorithm = keyof typeof ALGORITHMS;

/** A digest in canonical form: a registered algorithm, ":", and lower-case hex of its exact length. */
export type Digest = `${DigestAlgorithm}:${string}`;

/** The algorithm of content named by the registry itself (a manifest pushed by tag). */
export const CANONICAL_ALGORITHM: DigestAlgorithm = 'sha256';

export const DIGEST_ALGORITHMS: readonly DigestAlgorithm[] = Object.keys(ALGORITHMS) as DigestAlgorithm[];

/** The spec's general digest grammar: algorithm ":" encoded. */
const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const HEX = /^[a-f0-9]+$/;

export function isAlgorithm(name: string): name is DigestAlgorithm {
  return Object.hasOwn(ALGORITHMS, name);
}

/** True when `encoded` is the lower-case hex of a digest of `algorithm` (e.g. a file name in the store). */
export function isEncoded(algorithm: DigestAlgorithm, encoded: string): boolean {
  return encoded.length === ALGORITHMS[algorithm].hexLength && HEX.test(encoded);
}

export function isDigest(text: string): text is Digest {
  const colon = text.indexOf(':');
  if (colon < 0) return false;
  const algorithm = text.slice(0, colon);
  return isAlgorithm(algorithm) && isEncoded(algorithm, text.slice(colon + 1));
}

/** Parses a digest: a registered algorithm in canonical form; a well-formed other algorithm is unsupported. */
export function parseDigest(text: string): Digest {
  if (isDigest(text)) return text;
  if (DIGEST_GRAMMAR.test(text) && !isAlgorithm(text.slice(0, text.indexOf(':')))) {
    const algorithm = text.slice(0, Math.min(text.indexOf(':'), 32));
    throw new LongshoreError('LS_DIGEST_UNSUPPORTED', `digest algorithm "${algorithm}" is not supported (supported: ${DIGEST_ALGORITHMS.join(', ')})`, { digest: truncate(text) });
  }
  throw new LongshoreError('LS_DIGEST_INVALID', `invalid digest "${truncate(text)}"`, { digest: truncate(text) });
}

export function algorithmOf(digest: Digest): DigestAlgorithm {
  return digest.slice(0, digest.indexOf(':')) as DigestAlgorithm;
}

/** The hex part of a digest. */
export function encodedOf(digest: Digest): string {
  return digest.slice(digest.indexOf(':') + 1);
}

/** Hashes bytes as they come, for one algorithm. */
export class Digester {
  private readonly hash: Hash;

  constructor(readonly algorithm: DigestAlgorithm = CANONICAL_ALGORITHM, state?: Hash) {
    this.hash = state ?? createHash(ALGORITHMS[algorithm].hash);
  }

  /** An independent digester in the same state: what has been hashed so far, kept apart from what comes next. */
  copy(): Digester {
    return new Digester(this.algorithm, this.hash.copy());
  }

  update(chunk: Buffer): this {
    this.hash.update(chunk);
    return this;
  }

  /** The digest of everything so far; call once. */
  digest(): Digest {
    return `${this.algorithm}:${this.hash.digest('hex')}`;
  }
}

/** The digest of `body` with `algorithm` (canonical by default). */
export function digestOf(body: Buffer | string, algorithm: DigestAlgorithm = CANONICAL_ALGORITHM): Digest {
  return `${algorithm}:${createHash(ALGORITHMS[algorithm].hash).update(body).digest('hex')}`;
}

/**
 * The tag under which a registry without the referrers API keeps the referrers of `digest` (distribution
 * spec, "Referrers Tag Schema"): `<alg>-<ref>`, the algorithm cut to 32 characters and the encoded part
 * to 64, so that a sha512 subject still makes a valid tag. cosign's `.sig`/`.att` tags share the prefix.
 */
export function referrersTagOf(digest: Digest): string {
  return `${algorithmOf(digest).slice(0, 32)}-${encodedOf(digest).slice(0, 64)}`;
}

function truncate(text: string): string {
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}
