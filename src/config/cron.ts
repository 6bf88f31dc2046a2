/**
 * Cron schedules (5 fields: minute hour day-of-month month day-of-week) in a time zone, via
 * croner. Pure computation: no timers are started here.
 */
import { Cron } from 'croner';

/** Why `text` is not a 5-field cron expression, or null when it is one. */
export function cronProblem(text: string): string | null {
  const fields = text.trim().split(/\s+/);
  if (fields.length !== 5) return `must be a cron expression of 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}`;
  try {
    new Cron(text, { paused: true });
    return null;
  } catch (err) {
    return `is not a valid cron expression: ${err instanceof Error ? err.message.replace(/^CronPattern: /, '') : String(err)}`;
  }
}

/** A recurring window: opens at each cron fire time and lasts `durationMs`. */
export class CronWindow {
  private readonly cron: Cron;

  constructor(
    schedule: string,
    private readonly durationMs: number,
    timezone: string,
  ) {
    this.cron = new Cron(schedule, { timezone, paused: true });
  }

  /**
   * The window containing `now`, if any: [start, end), merged with later windows that overlap or
   * touch it (one opening as another closes: an hourly window of 60m, or minute 40 of every second
   * hour for 60m on the night clocks go back), so that `end` is when it really closes.
   */
  current(now: Date): { start: Date; end: Date } | null {
    // Only the latest opening at or before `now` can contain it: earlier ones closed earlier.
    const [start] = this.cron.previousRuns(1, new Date(now.getTime() + 1));
    if (!start || now.getTime() >= start.getTime() + this.durationMs) return null;
    let lastStart = start.getTime();
    let end = lastStart + this.durationMs;
    for (let i = 0; i < 64; i++) {
      const next = this.cron.nextRun(new Date(lastStart));
      if (!next || next.getTime() > end) break;
      lastStart = next.getTime();
      end = Math.max(end, lastStart + this.durationMs);
    }
    return { start, end: new Date(end) };
  }

  /** The next time a window opens after `now`. */
  nextStart(now: Date): Date | null {
    return this.cron.nextRun(now);
  }
}

/**
 * A point-in-time schedule: it fires at each time of `schedule` in `timezone`. Across daylight
 * saving changes it follows croner, as budget windows (CronWindow) do, checked by the tests in
 * test/config/cron.test.ts for Europe/Berlin and America/New_York:
 * - a time the spring change skips fires once, when the gap ends: a daily 02:30 fires at 03:00
 *   local (summer time) that day, and at 02:30 again the next;
 * - a time the autumn change repeats fires once, at its first occurrence (summer time): a daily
 *   02:30 in Berlin fires at 02:30 CEST (00:30Z), not again at 02:30 CET;
 * - other times keep their local time, so their UTC instant moves by an hour across the change.
 * `lastFire` agrees with `nextFire` around the changes (the previous fire is the one nextFire
 * would have given).
 */
export class CronSchedule {
  private readonly cron: Cron;

  constructor(schedule: string, timezone: string) {
    this.cron = new Cron(schedule, { timezone, paused: true });
  }

  /** The latest fire time at or before `now`, or null when it never fired. */
  lastFire(now: Date): Date | null {
    const [last] = this.cron.previousRuns(1, new Date(now.getTime() + 1));
    return last ?? null;
  }

  /** The first fire time after `now`, or null when it never fires again. */
  nextFire(now: Date): Date | null {
    return this.cron.nextRun(now);
  }
}
