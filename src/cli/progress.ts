// Progress on a terminal: one bar for the whole job (on top) and one per image, with bytes, rate and
// ETA, drawn by cli-progress's MultiBar on stderr (at most 10 frames a second). Only this module draws.
// Off a terminal, or with --json, nothing is drawn and no bar exists. Finished images scroll away above
// the bars once more than MAX_ROWS are on screen. Ctrl-C (or SIGTERM) stops the bars first, so the
// terminal is left with the last frame and its cursor below it, then the signal takes its usual course.
import { MultiBar, type Options, type Params, type SingleBar } from 'cli-progress';

const BAR_WIDTH = 24;
const LABEL_WIDTH = 40;
/** Image bars kept on screen at once: the oldest finished ones scroll away first. */
const MAX_ROWS = 12;
/** Redraws a second, at most. */
const FPS = 10;

interface Payload {
  label: string;
  /** Unset until the unit's size is known: the bar then shows bytes and rate only. */
  planned: boolean;
  /** Set when the unit is finished ("done, 1.2 GiB", "failed: …"). */
  note?: string;
}

export class ProgressDisplay {
  private readonly multibar: MultiBar | undefined;
  private readonly overall: SingleBar | undefined;
  private readonly bars = new Map<string, SingleBar>();
  private readonly order: string[] = [];
  private stopped = false;
  private readonly onSignal = (signal: NodeJS.Signals) => {
    this.stop();
    // Someone else (export's clean-up) handles the signal: let them. Else its default: the process ends.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };

  /** Draws on `out` when it is a terminal; with no stream, or one that is not a terminal, draws nothing. */
  constructor(out: NodeJS.WritableStream | undefined, overallLabel: string) {
    if (!out || (out as NodeJS.WriteStream).isTTY !== true) return;
    this.multibar = new MultiBar({
      stream: out,
      format: render,
      fps: FPS,
      hideCursor: true,
      // Handled here (onSignal): cli-progress's own handler would swallow Ctrl-C and keep the process alive.
      gracefulExit: false,
      etaBuffer: 50,
      // Every row rewritten in each frame: when a finished image scrolls away the rows below move, and a
      // bar whose text had not changed would otherwise leave the moved row's old text in its place.
      forceRedraw: true,
      autopadding: true,
    });
    this.overall = this.multibar.create(0, 0, { label: overallLabel, planned: false } satisfies Payload);
    // First in line: it restores the terminal before any other handler (export's) exits the process.
    process.prependOnceListener('SIGINT', this.onSignal);
    process.prependOnceListener('SIGTERM', this.onSignal);
  }

  /** On stderr when it is a terminal and JSON was not asked for; else a display that draws nothing. */
  static forTerminal(json: boolean, label: string): ProgressDisplay {
    return new ProgressDisplay(json ? undefined : process.stderr, label);
  }

  /** Sets the bytes a unit (an image; undefined: the whole job) is expected to move. */
  plan(ref: string | undefined, bytes: number): void {
    const bar = ref === undefined ? this.overall : this.bar(ref);
    if (!bar) return;
    bar.setTotal(bytes);
    bar.update({ planned: true });
  }

  add(ref: string | undefined, bytes: number): void {
    if (ref !== undefined) this.bar(ref)?.increment(bytes);
    this.overall?.increment(bytes);
  }

  /** Marks a unit finished with a short note ("ok", "failed: …"). */
  finish(ref: string, note: string): void {
    const bar = this.bar(ref);
    if (!bar || !this.multibar) return;
    const total = bar.getTotal();
    bar.update(Math.max(total, valueOf(bar)), { note });
    // Too many rows: the oldest finished image leaves the bars and is printed once above them.
    while (this.order.length > MAX_ROWS) {
      const oldest = this.order.find((r) => (this.bars.get(r) as unknown as { payload?: Payload }).payload?.note !== undefined);
      if (oldest === undefined) break;
      const gone = this.bars.get(oldest)!;
      this.multibar.log(`${lineOf(gone)}\n`);
      this.multibar.remove(gone);
      this.bars.delete(oldest);
      this.order.splice(this.order.indexOf(oldest), 1);
    }
  }

  /** Draws the final state and leaves the cursor below it. Idempotent. */
  stop(): void {
    if (!this.multibar || this.stopped) return;
    this.stopped = true;
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
    this.multibar.stop();
  }

  private bar(ref: string): SingleBar | undefined {
    if (!this.multibar || this.stopped) return undefined;
    let bar = this.bars.get(ref);
    if (!bar) {
      bar = this.multibar.create(0, 0, { label: ref, planned: false } satisfies Payload);
      this.bars.set(ref, bar);
      this.order.push(ref);
    }
    return bar;
  }
}

function valueOf(bar: SingleBar): number {
  return (bar as unknown as { value: number }).value;
}

/** The line a bar would draw now (for one leaving the screen). */
function lineOf(bar: SingleBar): string {
  const b = bar as unknown as { options: Options; payload: Payload; value: number; total: number; startTime: number; stopTime: number | null; eta: { getTime(): number | string } };
  return render(b.options, { value: b.value, total: b.total, startTime: b.startTime, stopTime: b.stopTime ?? Date.now(), eta: Number(b.eta.getTime()) || 0, progress: 0, maxWidth: 200 } as Params, b.payload);
}

/** `label [#####-----] 50.0 MiB/100.0 MiB 12.5 MiB/s ETA 4s`, or the note once finished. */
export function render(_options: Options, params: Params, payload: Payload): string {
  const { value, total } = params;
  const seconds = Math.max(0.001, ((params.stopTime ?? Date.now()) - params.startTime) / 1000);
  const rate = value / seconds;
  const fraction = payload.planned && total > 0 ? Math.min(1, value / total) : payload.note !== undefined ? 1 : 0;
  const filled = Math.round(fraction * BAR_WIDTH);
  const eta = payload.planned && payload.note === undefined && value < total && rate > 0 ? ` ETA ${duration(Number.isFinite(params.eta) && params.eta > 0 ? params.eta : (total - value) / rate)}` : '';
  const bytes = `${human(value)}${payload.planned ? `/${human(total)}` : ''}`;
  const status = payload.note === undefined ? `${bytes} ${human(rate)}/s${eta}` : `${payload.note} (${bytes}, ${human(rate)}/s)`;
  const label = payload.label.length > LABEL_WIDTH ? `…${payload.label.slice(-(LABEL_WIDTH - 1))}` : payload.label.padEnd(LABEL_WIDTH);
  const line = `${label} [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${status}`;
  return line.slice(0, Math.max(20, (params.maxWidth || 100) - 1));
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
