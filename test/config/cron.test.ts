import { describe, expect, it } from 'vitest';
import { CronWindow, cronProblem } from '../../src/config/cron.js';

const at = (iso: string) => new Date(iso);

describe('cron windows', () => {
  it('accepts 5-field expressions only', () => {
    expect(cronProblem('0 9 * * 1-5')).toBeNull();
    expect(cronProblem('0 9 * *')).toMatch(/5 fields/);
    expect(cronProblem('0 0 9 * * 1-5')).toMatch(/5 fields/);
    expect(cronProblem('61 9 * * *')).toMatch(/not a valid cron expression/);
  });

  it('is open from each firing for its duration, in the given time zone', () => {
    // 09:00-17:00 Berlin, weekdays. 2026-01-05 is a Monday; Berlin is UTC+1 in winter.
    const w = new CronWindow('0 9 * * 1-5', 8 * 3_600_000, 'Europe/Berlin');
    expect(w.current(at('2026-01-05T07:59:59Z'))).toBeNull();
    expect(w.current(at('2026-01-05T08:00:00Z'))).toEqual({ start: at('2026-01-05T08:00:00Z'), end: at('2026-01-05T16:00:00Z') });
    expect(w.current(at('2026-01-05T15:59:59Z'))).not.toBeNull();
    expect(w.current(at('2026-01-05T16:00:00Z'))).toBeNull();
    expect(w.current(at('2026-01-10T10:00:00Z'))).toBeNull(); // Saturday
    expect(w.nextStart(at('2026-01-09T17:00:00Z'))).toEqual(at('2026-01-12T08:00:00Z'));
  });

  it('follows daylight saving time: the window opens at 09:00 local on both sides of the change', () => {
    const w = new CronWindow('0 9 * * *', 3_600_000, 'Europe/Berlin');
    // Berlin switches to summer time on 2026-03-29 (UTC+1 -> UTC+2) and back on 2026-10-25.
    expect(w.current(at('2026-03-28T08:30:00Z'))?.start).toEqual(at('2026-03-28T08:00:00Z'));
    expect(w.current(at('2026-03-29T07:30:00Z'))?.start).toEqual(at('2026-03-29T07:00:00Z'));
    expect(w.current(at('2026-03-29T08:30:00Z'))).toBeNull();
    expect(w.current(at('2026-10-25T08:30:00Z'))?.start).toEqual(at('2026-10-25T08:00:00Z'));
  });

  it('handles a window that crosses midnight', () => {
    const w = new CronWindow('0 22 * * *', 4 * 3_600_000, 'UTC');
    expect(w.current(at('2026-01-05T23:30:00Z'))).toEqual({ start: at('2026-01-05T22:00:00Z'), end: at('2026-01-06T02:00:00Z') });
    expect(w.current(at('2026-01-06T01:59:00Z'))?.start).toEqual(at('2026-01-05T22:00:00Z'));
    expect(w.current(at('2026-01-06T02:00:00Z'))).toBeNull();
  });

  it('merges a window that opens as another closes: 02:40 happens twice the night clocks go back', () => {
    const w = new CronWindow('40 */2 * * *', 60 * 60_000, 'Europe/Berlin');
    // 02:40 CEST (00:40Z) for an hour, then 02:40 CET (01:40Z) for another: closed at 02:40Z.
    expect(w.current(at('2026-10-25T00:50:00Z'))).toEqual({ start: at('2026-10-25T00:40:00Z'), end: at('2026-10-25T02:40:00Z') });
    expect(w.current(at('2026-10-25T02:40:00Z'))).toBeNull();
  });

  it('merges windows that overlap into one', () => {
    const w = new CronWindow('0 * * * *', 90 * 60_000, 'UTC');
    const current = w.current(at('2026-01-05T10:10:00Z'));
    expect(current?.start).toEqual(at('2026-01-05T10:00:00Z'));
    expect(current!.end.getTime()).toBeGreaterThan(at('2026-01-05T11:30:00Z').getTime());
  });
});
