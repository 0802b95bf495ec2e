// Progress on a terminal: one bar per image and one for the whole job, with bytes, rate and ETA, redrawn
// in place on stderr at most every 100 ms. Hand-written stand-in for a progress-bar library (cli-progress
// would fit; see the report that introduced it): this module is the only one that draws, so swapping
// one in touches nothing else. Off a terminal, or with --json, nothing is drawn.

const REDRAW_MS = 100;
const BAR_WIDTH = 24;
/** Bars kept on screen at once: finished images scroll away first. */
const MAX_ROWS = 12;

interface Bar {
  label: string;
  total: number | undefined;
  done: number;
  started: number;
  finished: string | undefined;
}

export class ProgressDisplay {
  private readonly bars = new Map<string, Bar>();
  private readonly overall: Bar;
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly out: NodeJS.WriteStream | undefined, overallLabel: string) {
    this.overall = { label: overallLabel, total: undefined, done: 0, started: Date.now(), finished: undefined };
  }

  /** On stderr when it is a terminal and JSON was not asked for; else a display that draws nothing. */
  static forTerminal(json: boolean, label: string): ProgressDisplay {
    return new ProgressDisplay(!json && process.stderr.isTTY ? process.stderr : undefined, label);
  }

  /** Sets the bytes a unit (an image; undefined: the whole job) is expected to move. */
  plan(ref: string | undefined, bytes: number): void {
    if (ref === undefined) this.overall.total = bytes;
    else this.bar(ref).total = bytes;
    this.schedule();
  }

  add(ref: string | undefined, bytes: number): void {
    if (ref !== undefined) this.bar(ref).done += bytes;
    this.overall.done += bytes;
    this.schedule();
  }

  /** Marks a unit finished with a short note ("ok", "failed: …"). */
  finish(ref: string, note: string): void {
    const bar = this.bar(ref);
    bar.finished = note;
    if (bar.total !== undefined) bar.done = Math.max(bar.done, bar.total);
    this.schedule();
  }

  /** Draws the final state and leaves the cursor below it. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.draw();
  }

  private bar(ref: string): Bar {
    let bar = this.bars.get(ref);
    if (!bar) {
      bar = { label: ref, total: undefined, done: 0, started: Date.now(), finished: undefined };
      this.bars.set(ref, bar);
    }
    return bar;
  }

  private schedule(): void {
    if (!this.out || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.draw();
    }, REDRAW_MS);
  }

  private draw(): void {
    if (!this.out) return;
    const rows = [...this.bars.values()].slice(-MAX_ROWS).map((b) => line(b, this.out!.columns ?? 100));
    rows.push(line(this.overall, this.out.columns ?? 100));
    // Up over what was drawn last time, then each row cleared and rewritten.
    let text = this.drawn > 0 ? `\u001b[${this.drawn}F` : '';
    for (const row of rows) text += `\u001b[2K${row}\n`;
    this.out.write(text);
    this.drawn = rows.length;
  }
}

function line(bar: Bar, columns: number): string {
  const seconds = Math.max(0.001, (Date.now() - bar.started) / 1000);
  const rate = bar.done / seconds;
  const fraction = bar.total ? Math.min(1, bar.done / bar.total) : 0;
  const filled = Math.round(fraction * BAR_WIDTH);
  const eta = bar.total && rate > 0 && bar.done < bar.total ? ` ETA ${duration((bar.total - bar.done) / rate)}` : '';
  const status = bar.finished ?? `${human(bar.done)}${bar.total !== undefined ? `/${human(bar.total)}` : ''} ${human(rate)}/s${eta}`;
  const label = bar.label.length > 40 ? `…${bar.label.slice(-39)}` : bar.label.padEnd(40);
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${status}`.slice(0, Math.max(20, columns - 1));
}

export function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

function duration(seconds: number): string {
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(Math.ceil(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}
