import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock/index.js';
import { FirstHealthReplans, PLAN_COST_FACTOR } from '../../src/reconciler/first-health.js';

function replans(windowMs: number): { clock: ManualClock; fh: FirstHealthReplans; count: () => number } {
  const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
  let n = 0;
  const fh = new FirstHealthReplans(clock, windowMs, () => void n++);
  return { clock, fh, count: () => n };
}

describe('first-health replans', () => {
  it('replan the first report at once and the rest of a window together at its end', async () => {
    const { clock, fh, count } = replans(250);
    fh.onFirstHealth('t', 'g');
    fh.onFirstHealth('t', 'g');
    fh.onFirstHealth('t', 'g');
    expect(count()).toBe(1);
    await clock.advance(249);
    expect(count()).toBe(1);
    await clock.advance(1);
    expect(count()).toBe(2);
  });

  it('widen a group\'s window to PLAN_COST_FACTOR times its last plan when that plan was costly, so its replans take a bounded share of the thread', async () => {
    const { clock, fh, count } = replans(250);
    fh.planned('t', 'big', 150);
    fh.planned('t', 'small', 2);
    expect(fh.windowFor('t', 'big')).toBe(150 * PLAN_COST_FACTOR);
    expect(fh.windowFor('t', 'small')).toBe(250);
    fh.onFirstHealth('t', 'big');
    fh.onFirstHealth('t', 'big');
    fh.onFirstHealth('t', 'small');
    fh.onFirstHealth('t', 'small');
    expect(count()).toBe(2);
    await clock.advance(250);
    expect(count()).toBe(3); // the small group's window ended
    await clock.advance(150 * PLAN_COST_FACTOR - 250 - 1);
    expect(count()).toBe(3);
    await clock.advance(1);
    expect(count()).toBe(4); // the big group's
  });

  it('go back to the configured window once the group plans fast again', () => {
    const { fh } = replans(250);
    fh.planned('t', 'g', 150);
    fh.planned('t', 'g', 3);
    expect(fh.windowFor('t', 'g')).toBe(250);
  });

  it('replan on every first report when the window is 0, whatever plans cost', () => {
    const { fh, count } = replans(0);
    fh.planned('t', 'g', 500);
    fh.onFirstHealth('t', 'g');
    fh.onFirstHealth('t', 'g');
    expect(count()).toBe(2);
  });
});
