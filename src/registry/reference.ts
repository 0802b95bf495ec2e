// Repository names, tags and digests, by the OCI distribution spec's grammar (spec.md, "Pulling manifests"):
//   <name>      [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
//   <reference> a tag [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127} or a digest
// Everything that reaches the disk or an upstream URL has passed through here first, so a name can
// never carry "..", an empty component, percent-escapes or a host of its own.
import { LongshoreError } from '../errors.js';

const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const NAME_PATTERN = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const SHA256_PATTERN = /^sha256:[a-f0-9]{64}$/;
/** The spec's general digest grammar: algorithm ":" encoded. */
const DIGEST_PATTERN = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** distribution limits the whole name to 255 characters. */
export const MAX_NAME_LENGTH = 255;

/** A sha256 digest in canonical form, "sha256:" + 64 lower-case hex digits. */
export type Digest = `sha256:${string}`;

export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest };

export function isValidName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_PATTERN.test(name);
}

export function assertName(name: string): string {
  if (!isValidName(name)) {
    throw new LongshoreError('LS_NAME_INVALID', `invalid repository name "${truncate(name)}"`, { name: truncate(name) });
  }
  return name;
}

/** Parses a digest; only sha256 is stored, other well-formed algorithms are refused as unsupported. */
export function parseDigest(text: string): Digest {
  if (SHA256_PATTERN.test(text)) return text as Digest;
  if (DIGEST_PATTERN.test(text) && !text.startsWith('sha256:')) {
    throw new LongshoreError('LS_DIGEST_UNSUPPORTED', `digest algorithm "${text.split(':')[0]}" is not supported (only sha256)`, { digest: truncate(text) });
  }
  throw new LongshoreError('LS_DIGEST_INVALID', `invalid digest "${truncate(text)}"`, { digest: truncate(text) });
}

export function parseReference(text: string): Reference {
  if (text.includes(':')) return { kind: 'digest', digest: parseDigest(text) };
  if (!TAG_PATTERN.test(text)) {
    throw new LongshoreError('LS_TAG_INVALID', `invalid tag "${truncate(text)}"`, { tag: truncate(text) });
  }
  return { kind: 'tag', tag: text };
}

export function referenceText(ref: Reference): string {
  return ref.kind === 'tag' ? ref.tag : ref.digest;
}

function truncate(text: string): string {
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}
