/**
 * Time for everything in Drover comes from a Clock, so that days of lifecycle can be run in
 * milliseconds under test and every deadline is computed from one source.
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Current time. */
  now(): Date;
  /** Current time as epoch milliseconds. */
  nowMs(): number;
  /**
   * Runs `fn` once, at or after epoch millisecond `atMs`. A time in the past runs `fn` soon
   * (asynchronously, never inside this call).
   */
  schedule(atMs: number, fn: () => void): TimerHandle;
  /** Resolves once `ms` milliseconds have passed on this clock. */
  sleep(ms: number): Promise<void>;
}

/** setTimeout cannot wait longer than 2^31-1 ms; longer waits are chained. */
const MAX_TIMEOUT_MS = 2_147_483_647;

/** The wall clock. Timers do not keep the process alive on their own. */
export class SystemClock implements Clock {
  now(): Date {
    return new Date();
  }

  nowMs(): number {
    return Date.now();
  }

  schedule(atMs: number, fn: () => void): TimerHandle {
    let handle: NodeJS.Timeout | undefined;
    let cancelled = false;
    const arm = (): void => {
      const wait = Math.max(0, atMs - Date.now());
      handle = setTimeout(
        () => {
          if (cancelled) return;
          if (Date.now() < atMs) arm();
          else fn();
        },
        Math.min(wait, MAX_TIMEOUT_MS),
      );
      handle.unref();
    };
    arm();
    return {
      cancel: () => {
        cancelled = true;
        if (handle) clearTimeout(handle);
      },
    };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const handle = setTimeout(resolve, Math.max(0, ms));
      handle.unref();
    });
  }
}

interface ManualTimer {
  atMs: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** Lets queued promise chains and immediates run, so work started by a timer can progress. */
async function settle(rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * A clock that moves only when told to. `advance(ms)` fires every timer due within the window in
 * time order, setting `now()` to each timer's due time before firing it and letting the work it
 * starts run before the next one fires.
 */
export class ManualClock implements Clock {
  private current: number;
  private seq = 0;
  private timers: ManualTimer[] = [];

  constructor(start: Date = new Date(Date.UTC(2026, 0, 1))) {
    this.current = start.getTime();
  }

  now(): Date {
    return new Date(this.current);
  }

  nowMs(): number {
    return this.current;
  }

  /** Number of timers not yet fired or cancelled. */
  pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /** Due time of the earliest pending timer, or null. */
  nextTimerAt(): number | null {
    let best: number | null = null;
    for (const t of this.timers) if (!t.cancelled && (best === null || t.atMs < best)) best = t.atMs;
    return best;
  }

  schedule(atMs: number, fn: () => void): TimerHandle {
    const timer: ManualTimer = { atMs, seq: this.seq++, fn, cancelled: false };
    if (atMs <= this.current) {
      // Already due: fire on the next turn so callers never see re-entrancy.
      setImmediate(() => {
        if (!timer.cancelled) {
          timer.cancelled = true;
          fn();
        }
      });
    } else {
      this.timers.push(timer);
    }
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.schedule(this.current + Math.max(0, ms), resolve);
    });
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way, in order. */
  async advance(ms: number): Promise<void> {
    await this.advanceTo(this.current + Math.max(0, ms));
  }

  /** Moves time forward to `target` (epoch ms), firing due timers in order. */
  async advanceTo(target: number): Promise<void> {
    await settle(3);
    for (;;) {
      const next = this.takeNextDue(target);
      if (!next) break;
      if (next.atMs > this.current) this.current = next.atMs;
      next.fn();
      await settle(3);
    }
    if (target > this.current) this.current = target;
    await settle(3);
  }

  private takeNextDue(target: number): ManualTimer | undefined {
    this.timers = this.timers.filter((t) => !t.cancelled);
    let best: ManualTimer | undefined;
    for (const t of this.timers) {
      if (t.atMs > target) continue;
      if (!best || t.atMs < best.atMs || (t.atMs === best.atMs && t.seq < best.seq)) best = t;
    }
    if (best) best.cancelled = true;
    return best;
  }
}
