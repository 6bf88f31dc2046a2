/**
 * The autoscaler's pure decision, rule by rule: the recommendation, scale-up and its cooldown,
 * scale-down through the stabilisation window, its cooldown and maxStepDown, the floor and max,
 * the cooldowns an operator's size starts, and failures that keep the size and block.
 */
import { describe, expect, it } from 'vitest';
import { EMPTY_AUTOSCALE_STATE, decideAutoscale, keepRecommendations, maxStepDownOf, recommendSize, type AutoscaleInputs, type AutoscaleOutcome } from '../../src/autoscale/index.js';
import { autoscaleStateSchema, type AutoscaleState } from '../../src/state/index.js';

const T0 = Date.parse('2026-03-02T10:00:00Z');
const S = 1_000;
const M = 60_000;

const SETTINGS: AutoscaleInputs['settings'] = { targetPerInstance: 100, scaleUpCooldownMs: M, scaleDownCooldownMs: 10 * M, maxStepDown: { percent: 25 } };

function decide(over: Partial<AutoscaleInputs> & { value?: number }): AutoscaleOutcome {
  const { value, ...rest } = over;
  const out = decideAutoscale({
    reading: value === undefined ? { ok: true, value: 0 } : { ok: true, value },
    current: 4,
    floor: 0,
    max: 100,
    settings: SETTINGS,
    setByOthersAt: null,
    autoscaleInForce: false,
    previous: null,
    now: T0,
    ...rest,
  });
  // Every state it returns is one the operator state accepts.
  expect(autoscaleStateSchema.safeParse(out.state).success).toBe(true);
  return out;
}

/** Runs decisions one after another, each from the state the previous returned, with the size it set. */
function sequence(start: { size: number; state?: AutoscaleState | null }, steps: Array<{ at: number; value: number } & Partial<AutoscaleInputs>>): Array<{ at: number; size: number; out: AutoscaleOutcome }> {
  let size = start.size;
  let state = start.state ?? null;
  const out: Array<{ at: number; size: number; out: AutoscaleOutcome }> = [];
  for (const { at, value, ...rest } of steps) {
    const o = decide({ value, current: size, previous: state, now: at, ...rest });
    state = o.state;
    if (o.change) size = o.change.to;
    out.push({ at, size, out: o });
  }
  return out;
}

describe('the recommendation', () => {
  it('is ceil(value / targetPerInstance), never below 0, and not one more for a rounding error', () => {
    expect(recommendSize(450, 100)).toBe(5);
    expect(recommendSize(400, 100)).toBe(4);
    expect(recommendSize(0.3 * 3, 0.3)).toBe(3); // 0.8999999999999999 / 0.3
    expect(recommendSize(0, 100)).toBe(0);
    expect(recommendSize(-20, 100)).toBe(0);
    expect(recommendSize(1e30, 1)).toBe(100_000);
  });

  it('steps down by maxStepDown: a count, or ceil(percent of the size), at least 1', () => {
    expect(maxStepDownOf({ count: 3 }, 10)).toBe(3);
    expect(maxStepDownOf({ count: 0 }, 10)).toBe(1);
    expect(maxStepDownOf({ percent: 25 }, 10)).toBe(3);
    expect(maxStepDownOf({ percent: 25 }, 2)).toBe(1);
    expect(maxStepDownOf({ percent: 0 }, 10)).toBe(1);
  });
});

describe('scaling up', () => {
  it('goes to the recommendation at once, and says why in one sentence', () => {
    const o = decide({ value: 950, current: 4 });
    expect(o.change).toEqual({ from: 4, to: 10, direction: 'up' });
    expect(o.state.size).toBe(10);
    expect(o.state.at).toBe(new Date(T0).toISOString());
    expect(o.state.lastScaleUpAt).toBe(new Date(T0).toISOString());
    expect(o.decision).toBe('scaled up 4 -> 10: value 950 / 100 per instance: 10');
    expect(o.state.last).toEqual({ at: new Date(T0).toISOString(), value: 950, recommended: 10, decision: o.decision });
  });

  it('waits for scaleUpCooldown after a scale-up, then goes to the recommendation then', () => {
    const steps = sequence({ size: 2 }, [
      { at: T0, value: 500 },
      { at: T0 + 30 * S, value: 900 },
      { at: T0 + M - 1, value: 900 },
      { at: T0 + M, value: 1_200 },
    ]);
    expect(steps.map((s) => s.size)).toEqual([5, 5, 5, 12]);
    expect(steps[1]!.out.decision).toBe(`size kept at 5: value 900 / 100 per instance: 9; scale-up cooldown until ${new Date(T0 + M).toISOString()}`);
  });

  it('is capped by max', () => {
    const o = decide({ value: 5_000, current: 4, max: 20 });
    expect(o.change?.to).toBe(20);
    expect(o.decision).toBe('scaled up 4 -> 20: value 5000 / 100 per instance: 50; lowered to max 20');
  });
});

describe('scaling down', () => {
  it('takes the highest recommendation of the last scaleDownCooldown (the stabilisation window), in steps of maxStepDown, each after the cooldown', () => {
    const settings = { ...SETTINGS, scaleDownCooldownMs: 5 * M, maxStepDown: { count: 2 } };
    const steps = sequence({ size: 10 }, [
      { at: T0, value: 1_000, settings }, // 10: no change
      { at: T0 + 1 * M, value: 300, settings },
      { at: T0 + 4 * M, value: 200, settings },
      // T0 + 5m: the 10 of T0 has left the window; the highest left is 3, the step is 2 at most.
      { at: T0 + 5 * M + 1, value: 200, settings },
      // The scale-down restarted the cooldown: nothing until T0 + 10m.
      { at: T0 + 9 * M, value: 100, settings },
      { at: T0 + 10 * M + 1, value: 100, settings },
      { at: T0 + 15 * M + 2, value: 100, settings },
    ]);
    expect(steps.map((s) => s.size)).toEqual([10, 10, 10, 8, 8, 6, 4]);
    expect(steps[1]!.out.decision).toBe('size kept at 10: value 300 / 100 per instance: 3; highest in the last 5m: 10');
    expect(steps[3]!.out.decision).toBe('scaled down 10 -> 8: value 200 / 100 per instance: 2; highest in the last 5m: 3; at most 2 down at once');
    expect(steps[4]!.out.decision).toContain(`scale-down cooldown until ${new Date(T0 + 10 * M + 1).toISOString()}`);
    expect(steps[3]!.out.state.lastScaleDownAt).toBe(new Date(T0 + 5 * M + 1).toISOString());
  });

  it('steps by a percentage of the size in force (25% of 8 is 2, of 3 is 1)', () => {
    const settings = { ...SETTINGS, scaleDownCooldownMs: 0 };
    const steps = sequence({ size: 8 }, [
      { at: T0, value: 0, settings },
      { at: T0 + 1, value: 0, settings },
      { at: T0 + 2, value: 0, settings },
      { at: T0 + 3, value: 0, settings },
      { at: T0 + 4, value: 0, settings },
      { at: T0 + 5, value: 0, settings },
    ]);
    expect(steps.map((s) => s.size)).toEqual([6, 4, 3, 2, 1, 0]);
  });

  it('does not go below the floor (a schedule in force raises it)', () => {
    const settings = { ...SETTINGS, scaleDownCooldownMs: 0, maxStepDown: { count: 100 } };
    const o = decide({ value: 100, current: 9, floor: 6, settings });
    expect(o.change).toEqual({ from: 9, to: 6, direction: 'down' });
    expect(o.decision).toBe('scaled down 9 -> 6: value 100 / 100 per instance: 1; raised to the floor 6');
    expect(decide({ value: 100, current: 6, floor: 6, settings }).change).toBeNull();
  });

  it('waits scaleDownCooldown after a scale-up before any scale-down', () => {
    const steps = sequence({ size: 2 }, [
      { at: T0, value: 800 },
      { at: T0 + 11 * M, value: 100 },
    ]);
    // At T0 + 11m the window holds only the 1 of now, and the cooldown from T0 has passed.
    expect(steps.map((s) => s.size)).toEqual([8, 6]);
    const early = sequence({ size: 2 }, [
      { at: T0, value: 800 },
      { at: T0 + 10 * M - 1, value: 100 },
    ]);
    expect(early.map((s) => s.size)).toEqual([8, 8]);
  });
});

describe('a size an operator set', () => {
  it('starts both cooldowns: not raised before scaleUpCooldown, not lowered before scaleDownCooldown', () => {
    const opAt = T0 - 30 * S;
    const up = decide({ value: 900, current: 3, setByOthersAt: opAt });
    expect(up.change).toBeNull();
    expect(up.decision).toContain(`scale-up cooldown until ${new Date(opAt + M).toISOString()}`);
    expect(decide({ value: 900, current: 3, setByOthersAt: T0 - M }).change?.to).toBe(9);
    const down = decide({ value: 100, current: 20, setByOthersAt: T0 - 9 * M });
    expect(down.change).toBeNull();
    expect(down.decision).toContain(`scale-down cooldown until ${new Date(T0 + M).toISOString()}`);
    expect(decide({ value: 100, current: 20, setByOthersAt: T0 - 10 * M }).change).toEqual({ from: 20, to: 15, direction: 'down' });
  });

  it("(unlike the config's size, which starts no cooldown: with autoscale it is the size to start from)", () => {
    expect(decide({ value: 900, current: 3 }).change).toEqual({ from: 3, to: 9, direction: 'up' });
    expect(decide({ value: 100, current: 20 }).change).toEqual({ from: 20, to: 15, direction: 'down' });
  });

  it('is not adopted as autoscale\'s size when it does not change it', () => {
    const previous = { ...EMPTY_AUTOSCALE_STATE, size: 4, at: new Date(T0 - 20 * M).toISOString() };
    const o = decide({ value: 500, current: 7, setByOthersAt: T0 - 30 * S, previous });
    expect(o.change).toBeNull();
    expect(o.state.size).toBe(4);
  });
});

describe('autoscale\'s size held by a bound', () => {
  it('adopts the size in force (a schedule\'s floor above it), so the size steps down when the floor drops instead of jumping', () => {
    const previous = { ...EMPTY_AUTOSCALE_STATE, size: 2, at: new Date(T0 - 60 * M).toISOString() };
    const held = decide({ value: 100, current: 10, floor: 10, previous, autoscaleInForce: true });
    expect(held.change).toBeNull();
    expect(held.state.size).toBe(10);
    expect(held.state.at).toBe(previous.at); // not a new decision: the cooldowns do not restart
    const after = decide({ value: 100, current: 10, floor: 0, previous: held.state, now: T0 + 11 * M, autoscaleInForce: true });
    expect(after.change).toEqual({ from: 10, to: 7, direction: 'down' });
  });

  it('adopts it while blocked too: a floor that drops while Prometheus is down does not drop the size', () => {
    const previous = { ...EMPTY_AUTOSCALE_STATE, size: 2, at: new Date(T0 - 60 * M).toISOString() };
    const held = decide({ reading: { ok: false, message: 'down' }, current: 10, floor: 10, previous, autoscaleInForce: true });
    expect(held.state.size).toBe(10);
    expect(held.state.at).toBe(previous.at);
    // Not autoscale's size in force (an operator's): nothing adopted.
    expect(decide({ reading: { ok: false, message: 'down' }, current: 10, previous, setByOthersAt: T0 - M }).state.size).toBe(2);
  });
});

describe('a query with no number', () => {
  it.each([
    ['a failed query', 'querying Prometheus http://127.0.0.1:9090: ECONNREFUSED'],
    ['no sample', 'querying Prometheus http://127.0.0.1:9090: no sample (the query matched no series)'],
    ['NaN', "querying Prometheus http://127.0.0.1:9090: the query's value is NaN, not a number"],
    ['more than one series', 'querying Prometheus http://127.0.0.1:9090: the query gave 2 series; it must give one: aggregate it (sum(...), max(...))'],
  ])('(%s) keeps the size, never scales to min, and blocks with the reason', (_case, message) => {
    const previous: AutoscaleState = { ...EMPTY_AUTOSCALE_STATE, size: 6, at: new Date(T0 - 30 * M).toISOString(), recommendations: [{ at: new Date(T0 - M).toISOString(), size: 6 }] };
    const o = decide({ reading: { ok: false, message }, current: 6, floor: 1, previous });
    expect(o.change).toBeNull();
    expect(o.state.size).toBe(6);
    expect(o.blockTransition).toBe('blocked');
    expect(o.state.blocked).toEqual({ message, since: new Date(T0).toISOString() });
    expect(o.state.last).toEqual({ at: new Date(T0).toISOString(), value: null, recommended: null, decision: `size kept at 6: ${message}` });
    expect(o.state.recommendations).toEqual(previous.recommendations);
  });

  it('keeps a long reason within what the state may hold (a long URL, a long error from Prometheus)', () => {
    const message = `querying Prometheus http://${'p'.repeat(2_040)}.example:9090: HTTP 422: execution: ${'x'.repeat(500)}`;
    const o = decide({ reading: { ok: false, message }, current: 3 });
    expect(o.state.blocked!.message).toHaveLength(2_048);
    expect(o.state.last!.decision).toHaveLength(2_048);
    expect(o.state.blocked!.message.startsWith(message.slice(0, 2_000))).toBe(true);
  });

  it('keeps the time of the first failure while failures go on, and clears the block at the next good answer', () => {
    const first = decide({ reading: { ok: false, message: 'down' }, current: 5 });
    const second = decide({ reading: { ok: false, message: 'still down' }, current: 5, previous: first.state, now: T0 + M });
    expect(second.blockTransition).toBeNull();
    expect(second.state.blocked).toEqual({ message: 'still down', since: new Date(T0).toISOString() });
    const back = decide({ value: 500, current: 5, previous: second.state, now: T0 + 2 * M });
    expect(back.blockTransition).toBe('resumed');
    expect(back.state.blocked).toBeNull();
  });
});

describe('the recommendations kept', () => {
  it('are those within the window that a later one does not equal or exceed, oldest first', () => {
    const at = (ms: number): string => new Date(ms).toISOString();
    const kept = keepRecommendations(
      [
        { at: at(T0 - 11 * M), size: 50 }, // out of the 10m window
        { at: at(T0 - 9 * M), size: 9 },
        { at: at(T0 - 7 * M), size: 7 },
        { at: at(T0 - 6 * M), size: 5 }, // the 5 of now equals it and stays longer
        { at: at(T0 - 5 * M), size: 4 }, // the 5 of now exceeds it
      ],
      10 * M,
      T0,
      { at: at(T0), size: 5 },
    );
    expect(kept).toEqual([
      { at: at(T0 - 9 * M), size: 9 },
      { at: at(T0 - 7 * M), size: 7 },
      { at: at(T0), size: 5 },
    ]);
  });

  it('stay bounded whatever the window and interval', () => {
    // Strictly falling recommendations, one a second over a long window: none dominates another.
    const full = Array.from({ length: 4_096 }, (_, i) => ({ at: new Date(T0 - (4_096 - i) * S).toISOString(), size: 5_000 - i }));
    const previous: AutoscaleState = { ...EMPTY_AUTOSCALE_STATE, recommendations: full };
    const o = decide({ value: 100, current: 5_000, max: 100_000, previous, settings: { ...SETTINGS, scaleDownCooldownMs: 366 * 86_400_000 } });
    expect(o.state.recommendations.length).toBe(4_096);
    expect(o.state.recommendations.at(-1)).toEqual({ at: new Date(T0).toISOString(), size: 1 });
  });
});
