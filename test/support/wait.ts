// Polls until a condition holds: the one waitFor of the tests and the bench. The deadline is a safety
// bound, never an assertion about speed.

export interface WaitOptions {
  /** What is awaited, for the error message. Default "the condition". */
  what?: string;
  /** Give up after this many milliseconds. Default 30 000. */
  timeoutMs?: number;
  /**
   * Pause between attempts, in milliseconds. Default: 5 ms, doubling after each attempt up to 100 ms
   * (quick for in-process state, gentle on a child process polled for seconds).
   */
  intervalMs?: number;
  /** Runs before each attempt; what it throws ends the wait at once (e.g. "the process exited"). */
  failFast?: () => void;
}

/**
 * Calls `probe` until it returns a value other than undefined or false, and resolves with that value.
 * A probe that throws is tried again; once the deadline passes, the wait throws, naming the last error.
 */
export async function waitFor<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, options: WaitOptions = {}): Promise<Exclude<T, undefined | false>> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let pause = options.intervalMs ?? 5;
  let lastError: unknown;
  for (;;) {
    options.failFast?.();
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value as Exclude<T, undefined | false>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const reason = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`gave up waiting for ${options.what ?? 'the condition'} after ${timeoutMs} ms${reason}`);
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
    if (options.intervalMs === undefined) pause = Math.min(pause * 2, 100);
  }
}
