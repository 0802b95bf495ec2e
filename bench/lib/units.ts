// Sizes, rates and durations as the bench reads and prints them. MB is 10^6 bytes (throughput is
// quoted in SI units, like curl and wrk); MiB/GiB are binary and used for image sizes.

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const MB = 1_000_000;

const RATE = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB|kbit|Mbit|Gbit)\/s$/i;
const RATE_UNITS: Record<string, number> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: KiB, mib: MiB, gib: GiB, kbit: 1e3 / 8, mbit: 1e6 / 8, gbit: 1e9 / 8,
};

/** "50MB/s" → 50000000 (bytes per second); undefined when the text is not a rate. */
export function parseRate(text: string): number | undefined {
  const match = RATE.exec(text.trim());
  if (!match) return undefined;
  const bytes = Number(match[1]) * RATE_UNITS[match[2]!.toLowerCase()]!;
  return bytes > 0 ? bytes : undefined;
}

export function formatBytes(bytes: number): string {
  if (bytes >= GiB) return `${(bytes / GiB).toFixed(2)} GiB`;
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(1)} MiB`;
  if (bytes >= KiB) return `${(bytes / KiB).toFixed(1)} KiB`;
  return `${bytes} B`;
}

export function formatRate(bytesPerSecond: number): string {
  return `${(bytesPerSecond / MB).toFixed(0)} MB/s`;
}
