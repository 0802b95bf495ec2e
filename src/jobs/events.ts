// What admin jobs report as they go: one JSON object per line on the wire (POST /api/v1/jobs/*, NDJSON),
// the same objects handed to the CLI's progress display when it runs a job itself.
export type JobEvent =
  /** Bytes a unit of work (an image, or the whole job without `ref`) is expected to move. */
  | { event: 'plan'; ref?: string; bytes: number }
  /** Bytes moved since the last progress event of the same `ref`. */
  | { event: 'progress'; ref?: string; bytes: number }
  /** One image done (or failed, with `error`). */
  | { event: 'image'; ref: string; [key: string]: unknown }
  /** Import: one subject's referrers list stored for a repository (or refused, with `error`). */
  | { event: 'referrers'; subject: string; [key: string]: unknown }
  /** The job's summary; always the last event of a job that ran to its end. */
  | { event: 'result'; [key: string]: unknown }
  /** The job failed as a whole; the last event. */
  | { event: 'error'; code: string; message: string; detail?: unknown };

export type Emit = (event: JobEvent) => void;

/** The header carrying the data directory's admin token to /api/v1/jobs/ (http/jobs-router.ts). */
export const ADMIN_TOKEN_HEADER = 'x-longshore-admin-token';

/** How often progress is reported per unit of work, at most. */
const PROGRESS_MS = 200;

/** Adds up byte counts and emits them as progress events at most every PROGRESS_MS per ref. */
export class ProgressThrottle {
  private readonly pending = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly emit: Emit) {}

  add(ref: string | undefined, bytes: number): void {
    const key = ref ?? '';
    this.pending.set(key, (this.pending.get(key) ?? 0) + bytes);
    this.timer ??= setTimeout(() => this.flush(), PROGRESS_MS);
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const [key, bytes] of this.pending) this.emit(key === '' ? { event: 'progress', bytes } : { event: 'progress', ref: key, bytes });
    this.pending.clear();
  }
}
