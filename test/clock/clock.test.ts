import { describe, expect, it } from 'vitest';
import { ManualClock, SystemClock } from '../../src/clock/clock.js';

const START = Date.UTC(2030, 5, 1, 12, 0, 0);

/** Resolves after the current macrotask queue has drained once (not a time-based sleep). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

describe('ManualClock', () => {
  it('starts at the given time and reports it through now() and nowMs()', () => {
    const clock = new ManualClock(new Date(START));
    expect(clock.nowMs()).toBe(START);
    expect(clock.now().getTime()).toBe(START);
    expect(clock.now()).toBeInstanceOf(Date);
  });

  it('does not move on its own', async () => {
    const clock = new ManualClock(new Date(START));
    await nextTurn();
    await nextTurn();
    expect(clock.nowMs()).toBe(START);
  });

  it('advance moves time forward by exactly the given amount', async () => {
    const clock = new ManualClock(new Date(START));
    await clock.advance(1_500);
    expect(clock.nowMs()).toBe(START + 1_500);
    await clock.advance(0);
    expect(clock.nowMs()).toBe(START + 1_500);
  });

  it('advance never moves time backwards for a negative amount', async () => {
    const clock = new ManualClock(new Date(START));
    await clock.advance(-1_000);
    expect(clock.nowMs()).toBe(START);
  });

  it('fires timers in due order whatever order they were scheduled in', async () => {
    const clock = new ManualClock(new Date(START));
    const fired: string[] = [];
    clock.schedule(START + 300, () => fired.push('c'));
    clock.schedule(START + 100, () => fired.push('a'));
    clock.schedule(START + 200, () => fired.push('b'));
    await clock.advance(1_000);
    expect(fired).toEqual(['a', 'b', 'c']);
  });

  it('fires timers due at the same time in the order they were scheduled', async () => {
    const clock = new ManualClock(new Date(START));
    const fired: number[] = [];
    for (let i = 0; i < 5; i++) clock.schedule(START + 50, () => fired.push(i));
    await clock.advance(50);
    expect(fired).toEqual([0, 1, 2, 3, 4]);
  });

  it("sets now() to each timer's due time while firing it", async () => {
    const clock = new ManualClock(new Date(START));
    const seen: Array<[number, number]> = [];
    for (const offset of [250, 40, 700]) {
      clock.schedule(START + offset, () => seen.push([offset, clock.nowMs() - START]));
    }
    await clock.advance(10_000);
    expect(seen).toEqual([
      [40, 40],
      [250, 250],
      [700, 700],
    ]);
    expect(clock.nowMs()).toBe(START + 10_000);
  });

  it('fires only the timers that fall due within the window', async () => {
    const clock = new ManualClock(new Date(START));
    const fired: number[] = [];
    clock.schedule(START + 100, () => fired.push(100));
    clock.schedule(START + 101, () => fired.push(101));
    await clock.advance(100);
    expect(fired).toEqual([100]);
    expect(clock.pendingTimers()).toBe(1);
    expect(clock.nextTimerAt()).toBe(START + 101);
    await clock.advance(1);
    expect(fired).toEqual([100, 101]);
    expect(clock.pendingTimers()).toBe(0);
    expect(clock.nextTimerAt()).toBeNull();
  });

  it('fires a timer scheduled by another timer when it falls within the same advance', async () => {
    const clock = new ManualClock(new Date(START));
    const fired: Array<[string, number]> = [];
    clock.schedule(START + 100, () => {
      fired.push(['first', clock.nowMs() - START]);
      clock.schedule(clock.nowMs() + 50, () => fired.push(['second', clock.nowMs() - START]));
    });
    await clock.advance(500);
    expect(fired).toEqual([
      ['first', 100],
      ['second', 150],
    ]);
  });

  it('lets work started by a timer run before the next timer fires', async () => {
    const clock = new ManualClock(new Date(START));
    const log: string[] = [];
    clock.schedule(START + 10, () => {
      log.push('timer 1');
      void Promise.resolve()
        .then(() => undefined)
        .then(() => log.push('work of timer 1'));
    });
    clock.schedule(START + 20, () => log.push('timer 2'));
    await clock.advance(100);
    expect(log).toEqual(['timer 1', 'work of timer 1', 'timer 2']);
  });

  it('advanceTo moves to an absolute time and fires what is due on the way', async () => {
    const clock = new ManualClock(new Date(START));
    const fired: number[] = [];
    clock.schedule(START + 5_000, () => fired.push(clock.nowMs()));
    await clock.advanceTo(START + 4_999);
    expect(fired).toEqual([]);
    await clock.advanceTo(START + 6_000);
    expect(fired).toEqual([START + 5_000]);
    expect(clock.nowMs()).toBe(START + 6_000);
  });

  it('does not fire a timer in the past synchronously inside schedule(), but fires it soon after', async () => {
    const clock = new ManualClock(new Date(START));
    let fired = 0;
    clock.schedule(START - 1_000, () => fired++);
    expect(fired).toBe(0);
    await nextTurn();
    expect(fired).toBe(1);
    await clock.advance(10_000);
    expect(fired).toBe(1);
  });

  it('does not fire a timer due exactly now synchronously, and fires it without an advance', async () => {
    const clock = new ManualClock(new Date(START));
    let fired = false;
    clock.schedule(clock.nowMs(), () => {
      fired = true;
    });
    expect(fired).toBe(false);
    await nextTurn();
    expect(fired).toBe(true);
    expect(clock.nowMs()).toBe(START);
  });

  it('does not fire a cancelled timer', async () => {
    const clock = new ManualClock(new Date(START));
    const fired: string[] = [];
    const doomed = clock.schedule(START + 100, () => fired.push('cancelled'));
    clock.schedule(START + 200, () => fired.push('kept'));
    doomed.cancel();
    expect(clock.pendingTimers()).toBe(1);
    expect(clock.nextTimerAt()).toBe(START + 200);
    await clock.advance(1_000);
    expect(fired).toEqual(['kept']);
  });

  it('does not fire a past-due timer cancelled before its turn comes', async () => {
    const clock = new ManualClock(new Date(START));
    let fired = false;
    const handle = clock.schedule(START - 1, () => {
      fired = true;
    });
    handle.cancel();
    await nextTurn();
    await clock.advance(100);
    expect(fired).toBe(false);
  });

  it('lets a timer cancel a later one that falls in the same advance', async () => {
    const clock = new ManualClock(new Date(START));
    const fired: string[] = [];
    const later = clock.schedule(START + 200, () => fired.push('later'));
    clock.schedule(START + 100, () => {
      fired.push('earlier');
      later.cancel();
    });
    await clock.advance(1_000);
    expect(fired).toEqual(['earlier']);
  });

  it('treats cancel() after firing as harmless', async () => {
    const clock = new ManualClock(new Date(START));
    let count = 0;
    const handle = clock.schedule(START + 1, () => count++);
    await clock.advance(1);
    handle.cancel();
    await clock.advance(100);
    expect(count).toBe(1);
  });

  it('sleep resolves only once the clock has advanced by the given time', async () => {
    const clock = new ManualClock(new Date(START));
    let resolvedAt: number | null = null;
    void clock.sleep(1_000).then(() => {
      resolvedAt = clock.nowMs();
    });
    await clock.advance(999);
    expect(resolvedAt).toBeNull();
    await clock.advance(1);
    expect(resolvedAt).toBe(START + 1_000);
  });

  it('sleep(0) resolves without an advance', async () => {
    const clock = new ManualClock(new Date(START));
    let resolved = false;
    void clock.sleep(0).then(() => {
      resolved = true;
    });
    expect(resolved).toBe(false);
    await nextTurn();
    expect(resolved).toBe(true);
  });
});

describe('SystemClock', () => {
  it('reports the wall-clock time', () => {
    const clock = new SystemClock();
    const before = Date.now();
    const now = clock.nowMs();
    const nowDate = clock.now().getTime();
    const after = Date.now();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(after);
    expect(nowDate).toBeGreaterThanOrEqual(before);
    expect(nowDate).toBeLessThanOrEqual(after);
  });

  it('fires a near timer, not before its due time', async () => {
    const clock = new SystemClock();
    const due = clock.nowMs() + 20;
    const firedAt = await new Promise<number>((resolve) => {
      clock.schedule(due, () => resolve(Date.now()));
    });
    expect(firedAt).toBeGreaterThanOrEqual(due);
  });

  it('fires a timer in the past asynchronously, never inside schedule()', async () => {
    const clock = new SystemClock();
    let insideSchedule = false;
    const firedInside = new Promise<boolean>((resolve) => {
      insideSchedule = true;
      clock.schedule(clock.nowMs() - 1_000, () => resolve(insideSchedule));
      insideSchedule = false;
    });
    expect(await firedInside).toBe(false);
  });

  it('does not fire a cancelled timer', async () => {
    const clock = new SystemClock();
    const fired: string[] = [];
    const due = clock.nowMs() + 10;
    const cancelled = clock.schedule(due, () => fired.push('cancelled'));
    cancelled.cancel();
    // A later timer that does fire proves the cancelled one's time has passed.
    await new Promise<void>((resolve) => {
      clock.schedule(due + 30, () => {
        fired.push('witness');
        resolve();
      });
    });
    expect(fired).toEqual(['witness']);
  });

  it('sleep resolves after at least the given time', async () => {
    const clock = new SystemClock();
    const before = Date.now();
    await clock.sleep(15);
    // setTimeout may fire up to a millisecond early by Date.now()'s rounding.
    expect(Date.now() - before).toBeGreaterThanOrEqual(14);
  });
});
