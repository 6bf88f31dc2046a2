import { describe, expect, it } from 'vitest';
import { CronSchedule, CronWindow, cronProblem } from '../../src/config/cron.js';

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

describe('cron schedules across daylight saving', () => {
  // Berlin: summer time from 2026-03-29 02:00 CET to 2026-10-25 03:00 CEST (UTC+1 <-> UTC+2).
  // New York: from 2026-03-08 02:00 EST to 2026-11-01 02:00 EDT (UTC-5 <-> UTC-4).
  const fires = (cron: string, timezone: string, from: string, count: number): string[] => {
    const s = new CronSchedule(cron, timezone);
    const out: string[] = [];
    let t = at(from);
    for (let i = 0; i < count; i++) {
      t = s.nextFire(t)!;
      out.push(t.toISOString());
    }
    return out;
  };

  it.each([
    ['Europe/Berlin', '2026-03-27T12:00:00Z', ['2026-03-28T01:30:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z']],
    ['America/New_York', '2026-03-06T12:00:00Z', ['2026-03-07T07:30:00.000Z', '2026-03-08T07:00:00.000Z', '2026-03-09T06:30:00.000Z']],
  ])('fires a time the spring change skips once, when the gap ends (%s, 02:30 daily)', (zone, from, expected) => {
    expect(fires('30 2 * * *', zone, from, 3)).toEqual(expected);
  });

  it.each([
    // Berlin repeats 02:00-03:00: 02:30 CEST (00:30Z) fires, 02:30 CET (01:30Z) does not.
    ['Europe/Berlin', '30 2 * * *', '2026-10-23T12:00:00Z', ['2026-10-24T00:30:00.000Z', '2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']],
    // New York repeats 01:00-02:00: 01:30 EDT (05:30Z) fires, 01:30 EST (06:30Z) does not.
    ['America/New_York', '30 1 * * *', '2026-10-30T12:00:00Z', ['2026-10-31T05:30:00.000Z', '2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']],
  ])('fires a time the autumn change repeats once, at its first occurrence (%s, %s)', (zone, cron, from, expected) => {
    expect(fires(cron, zone, from, 3)).toEqual(expected);
  });

  it.each([
    ['Europe/Berlin', '2026-03-28T12:00:00Z', ['2026-03-29T06:00:00.000Z', '2026-03-30T06:00:00.000Z'], '2026-10-24T12:00:00Z', ['2026-10-25T07:00:00.000Z', '2026-10-26T07:00:00.000Z']],
    ['America/New_York', '2026-03-07T14:00:00Z', ['2026-03-08T12:00:00.000Z', '2026-03-09T12:00:00.000Z'], '2026-10-31T14:00:00Z', ['2026-11-01T13:00:00.000Z', '2026-11-02T13:00:00.000Z']],
  ])('keeps an ordinary time at its local time, moving its UTC instant by an hour (%s, 08:00 daily)', (zone, springFrom, spring, autumnFrom, autumn) => {
    expect(fires('0 8 * * *', zone, springFrom, 2)).toEqual(spring);
    expect(fires('0 8 * * *', zone, autumnFrom, 2)).toEqual(autumn);
  });

  it('gives as the last fire the one the next fire before it would give, minute by minute across both changes in both zones', () => {
    const days: Array<[string, string]> = [
      ['Europe/Berlin', '2026-03-29'],
      ['Europe/Berlin', '2026-10-25'],
      ['America/New_York', '2026-03-08'],
      ['America/New_York', '2026-11-01'],
    ];
    for (const [zone, day] of days) {
      for (const cron of ['30 2 * * *', '30 1 * * *', '*/20 1-3 * * *', '0 8 * * 1-5']) {
        const s = new CronSchedule(cron, zone);
        const start = Date.parse(`${day}T00:00:00Z`) - 3 * 86_400_000;
        const end = start + 6 * 86_400_000;
        const all: number[] = [];
        for (let t = s.nextFire(new Date(start)); t && t.getTime() <= end; t = s.nextFire(t)) all.push(t.getTime());
        for (let m = start + 86_400_000; m < end; m += 5 * 60_000) {
          const expected = all.filter((f) => f <= m).pop();
          expect(s.lastFire(new Date(m))?.getTime(), `${zone} ${cron} at ${new Date(m).toISOString()}`).toBe(expected);
        }
      }
    }
  });
});
