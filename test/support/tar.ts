// Writes POSIX ustar archives in memory: enough for image layers made of directories and regular
// files with short paths. Layout of the 512-byte header: POSIX.1-2001 "pax" section, ustar format.

export interface TarEntry {
  /** Relative path; directories end with '/'. At most 100 bytes (no prefix field is used). */
  path: string;
  /** File content; omitted for directories. */
  content?: Buffer;
}

const BLOCK = 512;
/** Fixed timestamp so that identical entries make identical archives. */
const MTIME = Date.UTC(2024, 0, 1) / 1000;

export function tarArchive(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const isDirectory = entry.path.endsWith('/');
    const content = isDirectory ? Buffer.alloc(0) : entry.content ?? Buffer.alloc(0);
    parts.push(tarHeader(entry.path, isDirectory, content.length));
    parts.push(content, Buffer.alloc((BLOCK - (content.length % BLOCK)) % BLOCK));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

/** One POSIX ustar header block (also used by the bench, which streams its large layers). */
export function tarHeader(path: string, isDirectory: boolean, size: number): Buffer {
  if (Buffer.byteLength(path) > 100) throw new Error(`tar path longer than 100 bytes: ${path}`);
  const block = Buffer.alloc(BLOCK);
  block.write(path, 0, 100, 'utf8');
  writeOctal(block, 100, 8, isDirectory ? 0o755 : 0o644);
  writeOctal(block, 108, 8, 0);
  writeOctal(block, 116, 8, 0);
  writeOctal(block, 124, 12, size);
  writeOctal(block, 136, 12, MTIME);
  block.write(isDirectory ? '5' : '0', 156, 1, 'ascii');
  block.write('ustar\0', 257, 6, 'ascii');
  block.write('00', 263, 2, 'ascii');
  block.write('root', 265, 32, 'ascii');
  block.write('root', 297, 32, 'ascii');
  // The checksum is computed with its own field read as eight spaces.
  block.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return block;
}

function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  block.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'ascii');
}
