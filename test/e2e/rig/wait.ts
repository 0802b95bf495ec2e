// Polls until a condition holds. The deadline is a safety bound, never an assertion about speed.

export interface WaitOptions {
  /** What is awaited, for the error message. */
  what: string;
  /** Give up after this many milliseconds. */
  timeoutMs: number;
  /** Pause between attempts, in milliseconds. Default 100. */
  intervalMs?: number;
  /** Runs before each attempt; what it throws ends the wait at once (e.g. "the process exited"). */
  failFast?: () => void;
}

/** Calls `probe` until it returns a value other than undefined, or throws once the deadline passes. */
export async function waitFor<T>(probe: () => Promise<T | undefined>, options: WaitOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  for (;;) {
    options.failFast?.();
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const reason = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`gave up waiting for ${options.what} after ${options.timeoutMs} ms${reason}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100));
  }
}
