import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock/index.js';
import { DisconnectChecks } from '../../src/reconciler/disconnect-checks.js';
import { EventType, type ReconcileEvent } from '../../src/reconciler/index.js';

const check = (instanceId: string, group = 'big'): ReconcileEvent & { tenant: string; groupKey: string; instanceId: string } => ({
  type: EventType.CheckInstance,
  tenant: 't',
  groupKey: group,
  instanceId,
  cause: 'disconnect',
  preventDuplicate: true,
});

function setup(windows: Record<string, number>): { clock: ManualClock; checks: DisconnectChecks; released: string[] } {
  const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
  const released: string[] = [];
  const checks = new DisconnectChecks(clock, 250, (_t, group) => windows[group] ?? 250, (e) => released.push(e.instanceId ?? '?'));
  return { clock, checks, released };
}

describe('disconnect checks', () => {
  it('release every check at once in a group whose plans are cheap', () => {
    const { checks, released } = setup({});
    checks.add(check('a', 'small'));
    checks.add(check('b', 'small'));
    expect(released).toEqual(['a', 'b']);
  });

  it('in a group whose plans are costly, release the first at once and the rest of its window together at its end, one per instance', async () => {
    const { clock, checks, released } = setup({ big: 1_500 });
    checks.add(check('a'));
    checks.add(check('b'));
    checks.add(check('c'));
    checks.add(check('b'));
    expect(released).toEqual(['a']);
    expect(checks.kept).toBe(2);
    await clock.advance(1_499);
    expect(released).toEqual(['a']);
    await clock.advance(1);
    expect(released).toEqual(['a', 'b', 'c']);
    // Those opened the next window: a check now waits for its end too.
    checks.add(check('d'));
    expect(released).toEqual(['a', 'b', 'c']);
    await clock.advance(1_500);
    expect(released).toEqual(['a', 'b', 'c', 'd']);
    // A quiet window closes; the next check goes at once again.
    await clock.advance(1_500);
    checks.add(check('e'));
    expect(released).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('drop what is kept when stopped', async () => {
    const { clock, checks, released } = setup({ big: 1_500 });
    checks.add(check('a'));
    checks.add(check('b'));
    checks.stop();
    await clock.advance(2_000);
    expect(released).toEqual(['a']);
  });
});
