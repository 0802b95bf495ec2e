// Signals between services the composition root (core.ts) builds: each is a small object built before
// both sides and handed to each, so the side that notices (content was stored, the disk is short of
// space) needs no reference to the side that acts (the evictor), and no service is given a setter or a
// closure over one built after it. A leaf module: it imports nothing of the project.
import { statfs } from 'node:fs/promises';

type Listener = () => void;

/** Content was added to the store, so the cache may be over its budget. */
export class ContentGrowth {
  private readonly listeners: Listener[] = [];

  /** `listener` runs synchronously at each growth: keep it cheap (Evictor.check is). */
  listen(listener: Listener): void {
    this.listeners.push(listener);
  }

  grew(): void {
    for (const listener of this.listeners) listener();
  }
}

/**
 * The free space of the data directory's filesystem against its floor (config cache.minFreeSpace, bytes),
 * and requests for room to be made when it is short.
 */
export class DiskSpace {
  private readonly listeners: Listener[] = [];

  constructor(
    private readonly root: string,
    private readonly minFreeSpace: number,
    private readonly measure: (path: string) => Promise<number | undefined> = freeSpace,
  ) {}

  /** Bytes available to this process on the filesystem, or undefined when it cannot be asked. */
  free(): Promise<number | undefined> {
    return this.measure(this.root);
  }

  /** True while the filesystem has less free space than minFreeSpace. */
  async isLow(): Promise<boolean> {
    const free = await this.free();
    return free !== undefined && free < this.minFreeSpace;
  }

  /** `listener` runs at each request for room (the evictor schedules a run). */
  onRelieve(listener: Listener): void {
    this.listeners.push(listener);
  }

  /** Asks for room to be made now. */
  relieve(): void {
    for (const listener of this.listeners) listener();
  }
}

async function freeSpace(path: string): Promise<number | undefined> {
  try {
    const stats = await statfs(path);
    return stats.bavail * stats.bsize;
  } catch {
    return undefined;
  }
}
