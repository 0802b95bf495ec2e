// Repository names, tags and digests, by the OCI distribution spec's grammar (spec.md, "Pulling manifests"):
//   <name>      [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
//   <reference> a tag [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127} or a digest
// Everything that reaches the disk or an upstream URL has passed through here first, so a name can
// never carry "..", an empty component, percent-escapes or a host of its own.
import { LongshoreError } from '../errors.js';
import { parseDigest, type Digest } from '../digest.js';

export { parseDigest, type Digest } from '../digest.js';

const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const NAME_PATTERN = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** distribution limits the whole name to 255 characters. */
export const MAX_NAME_LENGTH = 255;

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
