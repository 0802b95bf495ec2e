// POSIX tar (ustar, with PAX extended headers where ustar has no room), only as much as OCI image
// layout archives need: regular files and directories. Written by hand rather than with a tar library:
// a bundle is a few dozen headers around streamed blobs (see /tmp notes in the report on `tar-stream`).
//
// Writer: tarHeader() gives the header block(s) for one file, tarPadding() the zeros after its body,
// TAR_END the two zero blocks that end the archive. Reader: readTar() yields entries in order, each with
// a body that must be consumed (or skipped) before the next entry is asked for; memory stays at one
// input chunk whatever the archive's size.
import { LongshoreError } from '../../errors.js';

export const BLOCK = 512;
export const TAR_END: Buffer = Buffer.alloc(BLOCK * 2);
/** Largest size the 11 octal digits of a ustar size field hold (8 GiB - 1). */
const MAX_OCTAL_SIZE = 8 ** 11 - 1;
/** Largest PAX header or GNU long name this reader accepts. */
const MAX_META = 1024 * 1024;

/** The block(s) that precede a regular file's body. */
export function tarHeader(name: string, size: number, mtime = 0): Buffer {
  const split = splitName(name);
  const pax: string[] = [];
  if (!split) pax.push(paxRecord('path', name));
  if (size > MAX_OCTAL_SIZE) pax.push(paxRecord('size', String(size)));
  const header = ustar(split?.name ?? name.slice(-100).replace(/^\/+/, ''), split?.prefix ?? '', size > MAX_OCTAL_SIZE ? 0 : size, '0', mtime);
  if (pax.length === 0) return header;
  const body = Buffer.from(pax.join(''), 'utf8');
  return Buffer.concat([ustar(`PaxHeaders/${(split?.name ?? name).slice(-80)}`, '', body.length, 'x', mtime), body, tarPadding(body.length), header]);
}

/** Size of what tarHeader() returns, without building it. */
export function tarHeaderSize(name: string, size: number): number {
  return tarHeader(name, size).length;
}

export function tarPadding(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - rest);
}

/** Bytes one file takes in an archive: header(s), body, padding. */
export function tarEntrySize(name: string, size: number): number {
  return tarHeaderSize(name, size) + size + tarPadding(size).length;
}

function splitName(name: string): { prefix: string; name: string } | undefined {
  if (Buffer.byteLength(name) <= 100) return { prefix: '', name };
  for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest !== '') return { prefix, name: rest };
  }
  return undefined;
}

/** "LEN key=value\n", where LEN counts itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(body) + 1;
  while (String(length).length + Buffer.byteLength(body) !== length) length++;
  return `${length}${body}`;
}

function ustar(name: string, prefix: string, size: number, type: string, mtime: number): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(name, 0, 100, 'utf8');
  octal(block, 100, 8, type === '5' ? 0o755 : 0o644);
  octal(block, 108, 8, 0);
  octal(block, 116, 8, 0);
  octal(block, 124, 12, size);
  octal(block, 136, 12, mtime);
  block.write(type, 156, 1, 'ascii');
  block.write('ustar\u000000', 257, 8, 'ascii');
  block.write(prefix, 345, 155, 'utf8');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'ascii');
  return block;
}

function octal(block: Buffer, offset: number, length: number, value: number): void {
  block.write(`${value.toString(8).padStart(length - 1, '0')}\u0000`, offset, length, 'ascii');
}

export interface TarEntry {
  /** Path inside the archive, without a leading "./". */
  name: string;
  /** 'file', 'directory' or 'other' (links, devices: never read). */
  type: 'file' | 'directory' | 'other';
  size: number;
  /** Offset of the entry's header in the archive, for messages. */
  offset: number;
  /** The body, chunk by chunk; consume it before asking for the next entry. */
  body(): AsyncGenerator<Buffer>;
}

/** Reads exact byte counts from a stream of chunks. */
export class ByteReader {
  private readonly iterator: AsyncIterator<Buffer>;
  private pending: Buffer | undefined;
  private ended = false;
  /** Bytes consumed so far. */
  position = 0;

  constructor(source: AsyncIterable<Buffer>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  private async more(): Promise<boolean> {
    if (this.ended) return false;
    const next = await this.iterator.next();
    if (next.done) {
      this.ended = true;
      return false;
    }
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as Uint8Array);
    this.pending = this.pending && this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    return true;
  }

  /** Exactly `n` bytes; undefined at a clean end of input before the first byte; throws when cut short. */
  async exactly(n: number): Promise<Buffer | undefined> {
    while ((this.pending?.length ?? 0) < n) {
      if (!(await this.more())) {
        if ((this.pending?.length ?? 0) === 0) return undefined;
        throw truncated(this.position + (this.pending?.length ?? 0));
      }
    }
    const out = this.pending!.subarray(0, n);
    this.pending = this.pending!.subarray(n);
    this.position += n;
    return out;
  }

  /** The next `n` bytes as they arrive; throws when the input ends first. */
  async *chunks(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if ((this.pending?.length ?? 0) === 0 && !(await this.more())) throw truncated(this.position);
      const take = Math.min(left, this.pending!.length);
      const out = this.pending!.subarray(0, take);
      this.pending = this.pending!.subarray(take);
      this.position += take;
      left -= take;
      yield out;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const chunk of this.chunks(n)) void chunk;
  }
}

function truncated(position: number): LongshoreError {
  return new LongshoreError('LS_BUNDLE_INVALID', `the archive ends early, at byte ${position}: it is truncated`, { position });
}

export async function* readTar(source: AsyncIterable<Buffer>): AsyncGenerator<TarEntry> {
  const reader = new ByteReader(source);
  let pax: Record<string, string> = {};
  let longName: string | undefined;
  for (;;) {
    const offset = reader.position;
    const block = await reader.exactly(BLOCK);
    if (!block) throw truncated(offset); // no end-of-archive blocks: cut short between entries
    if (block.every((b) => b === 0)) return; // end of archive (the second zero block is not required)
    verifyChecksum(block, offset);
    const type = String.fromCharCode(block[156]!);
    let size = readNumber(block, 124, 12, offset);
    if (pax.size !== undefined) size = Number(pax.size);
    if (!Number.isSafeInteger(size) || size < 0) throw bad(offset, 'has an invalid size');
    const prefix = text(block, 345, 155);
    let name = longName ?? pax.path ?? (prefix ? `${prefix}/${text(block, 0, 100)}` : text(block, 0, 100));
    if (type === 'x' || type === 'g' || type === 'L') {
      if (size > MAX_META) throw bad(offset, `has a ${size}-byte extended header`);
      const body = size === 0 ? Buffer.alloc(0) : await reader.exactly(size);
      if (!body) throw truncated(reader.position);
      await reader.skip(padding(size));
      if (type === 'x') pax = parsePax(body, offset);
      if (type === 'L') longName = body.toString('utf8').replace(/\0+$/, '');
      continue; // 'g' (global) carries nothing an OCI layout needs
    }
    pax = {};
    longName = undefined;
    name = name.replace(/^(?:\.\/)+/, '').replace(/^\/+/, '');
    const kind = type === '0' || type === '\0' || type === '7' ? 'file' : type === '5' ? 'directory' : 'other';
    let consumed = false;
    const body = async function* (): AsyncGenerator<Buffer> {
      if (consumed) throw new LongshoreError('LS_INTERNAL', 'tar entry body read twice');
      consumed = true;
      if (kind === 'file') yield* reader.chunks(size);
    };
    yield { name, type: kind, size: kind === 'file' ? size : 0, offset, body };
    if (!consumed && kind === 'file') await reader.skip(size);
    if (kind === 'file') await reader.skip(padding(size));
    else if (size > 0 && kind === 'other') await reader.skip(size + padding(size));
  }
}

function padding(size: number): number {
  const rest = size % BLOCK;
  return rest === 0 ? 0 : BLOCK - rest;
}

function text(block: Buffer, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? length : end).toString('utf8');
}

function readNumber(block: Buffer, offset: number, length: number, at: number): number {
  if (block[offset]! & 0x80) {
    // base-256 (GNU, Go's archive/tar for sizes past 8 GiB): big-endian after the marker bit
    let value = block[offset]! & 0x7f;
    for (let i = 1; i < length; i++) value = value * 256 + block[offset + i]!;
    return value;
  }
  const digits = text(block, offset, length).trim();
  if (digits === '') return 0;
  if (!/^[0-7]+$/.test(digits)) throw bad(at, 'has a malformed header field');
  return parseInt(digits, 8);
}

function verifyChecksum(block: Buffer, offset: number): void {
  const recorded = readNumber(block, 148, 8, offset);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  if (recorded !== unsigned && recorded !== signed) throw bad(offset, 'has a wrong header checksum (the archive is corrupt)');
}

function parsePax(body: Buffer, offset: number): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 0;
  while (at < body.length) {
    const space = body.indexOf(0x20, at);
    if (space < 0) break;
    const length = Number(body.subarray(at, space).toString('ascii'));
    if (!Number.isSafeInteger(length) || length <= 0 || at + length > body.length) throw bad(offset, 'has a malformed extended header');
    const record = body.subarray(space + 1, at + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    at += length;
  }
  return out;
}

function bad(offset: number, what: string): LongshoreError {
  return new LongshoreError('LS_BUNDLE_INVALID', `the archive entry at byte ${offset} ${what}`, { offset });
}

/**
 * The regular files of an archive on disk, by name with their sizes, reading only headers (a seek past
 * each body): listing a 10 GiB bundle reads a few kilobytes. `wanted` names files whose bodies (at most
 * MAX_META bytes each) are returned too.
 */
export async function scanTar(handle: import('node:fs/promises').FileHandle, wanted: ReadonlySet<string>): Promise<{ files: Map<string, number>; bodies: Map<string, Buffer> }> {
  const files = new Map<string, number>();
  const bodies = new Map<string, Buffer>();
  const readAt = async (position: number, length: number): Promise<Buffer> => {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, position);
    if (bytesRead < length) throw truncated(position + bytesRead);
    return buffer;
  };
  let position = 0;
  let pax: Record<string, string> = {};
  let longName: string | undefined;
  for (;;) {
    const offset = position;
    const block = await readAt(position, BLOCK);
    position += BLOCK;
    if (block.every((b) => b === 0)) break;
    verifyChecksum(block, offset);
    const type = String.fromCharCode(block[156]!);
    let size = readNumber(block, 124, 12, offset);
    if (pax.size !== undefined) size = Number(pax.size);
    if (!Number.isSafeInteger(size) || size < 0) throw bad(offset, 'has an invalid size');
    if (type === 'x' || type === 'g' || type === 'L') {
      if (size > MAX_META) throw bad(offset, `has a ${size}-byte extended header`);
      const body = await readAt(position, size);
      if (type === 'x') pax = parsePax(body, offset);
      if (type === 'L') longName = body.toString('utf8').replace(/\0+$/, '');
      position += size + padding(size);
      continue;
    }
    const prefix = text(block, 345, 155);
    const name = (longName ?? pax.path ?? (prefix ? `${prefix}/${text(block, 0, 100)}` : text(block, 0, 100))).replace(/^(?:\.\/)+/, '').replace(/^\/+/, '');
    pax = {};
    longName = undefined;
    if (type === '0' || type === '\0' || type === '7') {
      files.set(name, size);
      if (wanted.has(name) && size <= MAX_META) bodies.set(name, await readAt(position, size));
    }
    position += size + padding(size);
  }
  return { files, bodies };
}
