/**
 * The reconciler broken in place (a spy on the code that makes a decision), the simulator
 * unchanged: it must report the invariant the broken code protects. (plants.test.ts plants bugs
 * in the simulator's world instead.) None of these spies touches code the checker runs: it
 * computes settings, windows and reasons on its own.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as configModule from '../../src/config/config.js';
import { CronWindow } from '../../src/config/cron.js';
import { DefaultInstanceManager } from '../../src/instances/index.js';
import { Priority } from '../../src/queue/priority.js';
import { BudgetTracker } from '../../src/reconciler/disruption.js';
import * as planModule from '../../src/reconciler/plan.js';
import type { Plan, PlanAction, PlanInput } from '../../src/reconciler/plan.js';
import { PlanInputs } from '../../src/reconciler/plan-inputs.js';
import { LocalDb } from '../../src/store/local-db.js';
import { runSeed } from '../../sim/run.js';
import { SIM_START, type Scenario } from '../../sim/scenario.js';
import { runScenario } from '../../sim/world.js';

const MIN = 60_000;

/** Two instances; scaled to one, which drains for 5 min; an operator extends that drain by 15 min, past its 10 min cap. */
const EXTENSION: Scenario = {
  seed: 1,
  fleet: {
    shard: { healthCheckIntervalMs: MIN, missedHealthThreshold: 3, startupTimeoutMs: 5 * MIN, defaultDrainTimeoutMs: MIN, createRateLimitMs: 0, defaultNoticeWindowMs: MIN, workers: 1, resyncIntervalMs: 0, maxAttempts: 5 },
    provider: { callTimeoutMs: 20_000, maxCallsPerSecond: 0, simMaxCallsPerSecond: 0, createLatencyMs: 0, deleteLatencyMs: 0, listLatencyMs: 0 },
    groups: [
      {
        tenant: 't0',
        group: 'web',
        size: 2,
        template: 'a',
        drainTimeoutMs: 5 * MIN,
        maxSurge: 1,
        startupTimeoutMs: null,
        eligibleAgeMs: 0,
        forcedAgeMs: 0,
        cancelHoldMs: 5 * MIN,
        maxDrainTimeoutMs: 10 * MIN,
        budgets: [],
        maxUnhealthy: null,
      },
    ],
    templates: ['a'],
    bootMaxMs: 30_000,
    firstHealthReplanMs: 0,
    startMs: SIM_START,
  },
  steps: [
    { dtMs: 3 * MIN, action: { kind: 'scale', group: 0, size: 1 } },
    { dtMs: 1_000, action: { kind: 'operator', op: 'extend', group: 0, pick: 0, byMs: 15 * MIN } },
    { dtMs: MIN, action: { kind: 'wait' } },
  ],
};

/**
 * Two instances, maxUnhealthy 1, health every 30 s, 3 missed (stale after 90 s; healthSettle 90 s,
 * unhealthyWindow 270 s by default). One agent goes silent at 3:00 (stale at 4:30, acted on at
 * 6:00); at 5:50 both instances stop together. At 6:00 the silent one is replaced (the other has
 * not missed its reports yet: one counts); the other is judged at 7:00 and, with the replaced one
 * still counted, holds the brake. A brake that forgets its departures replaces it at 8:30.
 */
const CORRELATED: Scenario = {
  seed: 1,
  fleet: {
    ...EXTENSION.fleet,
    shard: { ...EXTENSION.fleet.shard, healthCheckIntervalMs: 30_000, missedHealthThreshold: 3 },
    groups: [{ ...EXTENSION.fleet.groups[0]!, size: 2, drainTimeoutMs: 0, maxDrainTimeoutMs: null, maxUnhealthy: { count: 1 } }],
    bootMaxMs: 20_000,
  },
  steps: [
    { dtMs: 3 * MIN, action: { kind: 'instance', fault: 'silence', group: 0, pick: 0, announce: false, durationMs: null } },
    { dtMs: 2 * MIN + 50_000, action: { kind: 'freeze', group: 0, over: 1, fraction: 1, pick: 0, announce: false, durationMs: 20 * MIN } },
    { dtMs: 4 * MIN + 10_000, action: { kind: 'wait' } },
    { dtMs: 10 * MIN, action: { kind: 'wait' } },
  ],
};

/** The brake's timing planted away: `disruption.healthSettleMs` and/or `unhealthyWindowMs` 0 in every group's settings. */
function plantBrakeTiming(over: { healthSettleMs?: 0; unhealthyWindowMs?: 0 }): void {
  const original = configModule.groupSettings;
  vi.spyOn(configModule, 'groupSettings').mockImplementation((config, tenant, group) => {
    const settings = original(config, tenant, group);
    return settings && { ...settings, disruption: { ...settings.disruption, ...over } };
  });
}

afterEach(() => {
  vi.restoreAllMocks();
});

/** Plans as planGroup does, then changed by `change` (a bug planted in the plan). */
function plantInPlan(change: (plan: Plan, input: PlanInput) => Plan): void {
  const original = planModule.planGroup;
  vi.spyOn(planModule, 'planGroup').mockImplementation((input) => {
    const plan = original(input);
    const planted = change(plan, input);
    // `silenceWake` describes the plan's own wake-up: a plant that moves the wake-up takes it away
    // (the reconciler would otherwise skip the planted wake-up as one for health reports only).
    return planted.wakeAt?.getTime() === plan.wakeAt?.getTime() ? planted : { ...planted, silenceWake: null };
  });
}

/**
 * The first seed (of 1..limit) that breaks an invariant, and which; fails when none does. Up to 20
 * seeds of 120 steps: CPU-bound, seconds on a quiet machine, more on a loaded one (hence the timeouts).
 */
async function firstViolation(limit = 20): Promise<{ seed: number; invariant: string; report: string }> {
  for (let seed = 1; seed <= limit; seed++) {
    const outcome = await runSeed(seed, { shrink: false, steps: 120 });
    if (outcome.violation) return { seed, invariant: outcome.violation.invariant, report: outcome.report ?? '' };

  }
  throw new Error(`no violation in ${limit} seeds`);
}

describe('the simulator catches the reconciler’s own disruption checks broken', { timeout: 120_000 }, () => {
  it('reports invariant 7 or 11 when budgets allow everything (BudgetTracker.allows always true)', async () => {
    vi.spyOn(BudgetTracker.prototype, 'allows').mockReturnValue(true);
    const found = await firstViolation();
    expect(['7', '11']).toContain(found.invariant);
    expect(found.report).toMatch(/disrupted under budgets\[\d\]/);
  });

  it('reports invariant 9 when the plan is not told about protections', async () => {
    const original = PlanInputs.prototype.operatorInputs;
    vi.spyOn(PlanInputs.prototype, 'operatorInputs').mockImplementation(function (this: PlanInputs, instances) {
      return { ...original.call(this, instances), protectedUntil: new Map<string, number>() };
    });
    const found = await firstViolation();
    expect(found.invariant).toBe('9');
    expect(found.report).toMatch(/while protected/);
  });
});

describe('the simulator catches bugs in the code its checker used to borrow', { timeout: 120_000 }, () => {
  it('reports invariant 7 or 11 when budget windows close at half their length (src/config/cron.ts)', async () => {
    const original = CronWindow.prototype.current;
    vi.spyOn(CronWindow.prototype, 'current').mockImplementation(function (this: CronWindow, now: Date) {
      const open = original.call(this, now);
      const durationMs = Reflect.get(this, 'durationMs') as number;
      if (!open) return null;
      const end = open.start.getTime() + durationMs / 2;
      return now.getTime() < end ? { start: open.start, end: new Date(end) } : null;
    });
    const found = await firstViolation(20);
    expect(['7', '11']).toContain(found.invariant);
    expect(found.report).toMatch(/disrupted under budgets\[\d\].*window/);
  });

  it('reports invariant 1 when the settings give every group one more maxSurge than its config (src/config/config.ts)', async () => {
    const original = configModule.groupSettings;
    vi.spyOn(configModule, 'groupSettings').mockImplementation((config, tenant, group) => {
      const settings = original(config, tenant, group);
      return settings && { ...settings, maxSurge: settings.maxSurge + 1 };
    });
    const found = await firstViolation(10);
    expect(found.invariant).toBe('1');
    expect(found.report).toMatch(/cap size \+ maxSurge/);
  });
});

describe('the simulator catches a reconciler that breaks each invariant (planted in src/ by a spy)', { timeout: 120_000 }, () => {
  it('reports invariant 2 when a rotation’s replacement counts as healthy before it has reported', async () => {
    const original = planModule.planGroup;
    vi.spyOn(planModule, 'planGroup').mockImplementation((input) =>
      original({ ...input, instances: input.instances.map((i) => (i.replaces && i.status === 'running' ? { ...i, healthAt: new Date(input.now) } : i)) }),
    );
    const found = await firstViolation();
    expect(found.invariant).toBe('2');
    expect(found.report).toMatch(/drained for (expiry|drift|operator) without a healthy replacement/);
  });

  it('reports invariant 3 when a drain is deleted a second before its deadline', async () => {
    plantInPlan((plan, input) => {
      const early = input.instances.filter(
        (i) => i.status === 'draining' && !i.drainAckedAt && i.drainDeadline && i.drainDeadline.getTime() > input.now && i.drainDeadline.getTime() <= input.now + 1_000,
      );
      const actions = [...plan.actions, ...early.map((i) => ({ kind: 'delete' as const, instanceId: i.id, reason: 'drainDeadline' as const, priority: Priority.high, message: 'planted: a second early' }))];
      // Wake a second early for every deadline, so that a plan runs within that second.
      const wakeAt = plan.wakeAt && new Date(Math.max(input.now + 1, plan.wakeAt.getTime() - 1_000));
      return { ...plan, actions, wakeAt };
    });
    const found = await firstViolation();
    expect(found.invariant).toBe('3');
    expect(found.report).toMatch(/deleted for its drain deadline 1s early/);
  });

  it('reports invariant 3 when every drain is deleted 20 s after its deadline (the slack without provider trouble is the configured work)', async () => {
    const LATE_MS = 20_000;
    plantInPlan((plan, input) => {
      const held = new Map<string, number>();
      for (const i of input.instances) {
        const deadline = i.drainDeadline?.getTime();
        if (i.status === 'draining' && !i.drainAckedAt && deadline !== undefined && deadline + LATE_MS > input.now) held.set(i.id, deadline + LATE_MS);
      }
      const actions = plan.actions.filter((a) => !(a.kind === 'delete' && a.reason === 'drainDeadline' && held.has(a.instanceId)));
      const wake = Math.min(plan.wakeAt?.getTime() ?? Number.POSITIVE_INFINITY, ...held.values());
      return { ...plan, actions, wakeAt: Number.isFinite(wake) ? new Date(wake) : null };
    });
    const found = await firstViolation();
    expect(found.invariant).toBe('3');
    // 20 s late, less the quiet slack (the fleet's list latency, at most 3 s, and its rate limit's spacing).
    const late = Number(/(?:decided gone|still not deleted) (\d+)s after it was due \(drain deadline/.exec(found.report)?.[1]);
    expect(late).toBeGreaterThanOrEqual(15);
    expect(late).toBeLessThanOrEqual(20);
  });

  it('reports invariant 5 when one delete in 16 reports success without deleting', async () => {
    const original = DefaultInstanceManager.prototype.deleteInstance;
    let calls = 0;
    vi.spyOn(DefaultInstanceManager.prototype, 'deleteInstance').mockImplementation(function (this: DefaultInstanceManager, instanceId: string) {
      if (++calls % 16 === 0) return Promise.resolve();
      return original.call(this, instanceId);
    });
    const found = await firstViolation();
    expect(found.invariant).toBe('5');
    expect(found.report).toMatch(/while the provider still holds it|provider holds/);
  });

  it('reports invariant 1 when a plan that creates makes one create more', async () => {
    plantInPlan((plan) => {
      const create = plan.actions.find((a) => a.kind === 'create');
      return create ? { ...plan, actions: [...plan.actions, { ...create, message: 'planted: one more' }] } : plan;
    });
    const found = await firstViolation();
    expect(found.invariant).toBe('1');
    expect(found.report).toMatch(/cap size \+ maxSurge/);
  });

  it('reports invariant 10 when extensions are not capped by maxDrainTimeout', async () => {
    // Random schedules rarely extend a drain past its cap (an extension needs a drain in progress
    // and an operator step aimed at it): a hand-written one does, at once. Unbroken, it holds.
    expect((await runScenario(EXTENSION)).violations).toEqual([]);
    const original = configModule.groupSettings;
    vi.spyOn(configModule, 'groupSettings').mockImplementation((config, tenant, group) => {
      const settings = original(config, tenant, group);
      return settings && { ...settings, disruption: { ...settings.disruption, maxDrainTimeoutMs: null } };
    });
    const result = await runScenario(EXTENSION);
    expect(result.violations[0]?.invariant).toBe('10');
    expect(result.violations[0]?.message).toMatch(/past drain start \+ maxDrainTimeout/);
  });

  it('reports invariant 12 when the brake neither waits healthSettle nor counts the instances it replaced (a correlated failure replaced bit by bit)', async () => {
    plantBrakeTiming({ healthSettleMs: 0, unhealthyWindowMs: 0 });
    const found = await firstViolation(20);
    expect(found.invariant).toBe('12');
    expect(found.report).toMatch(/after it failed with \d+ other\(s\) \((freeze|partition) of \d+ at .*\), before healthSettle|replaced for health within unhealthyWindow/);
  });

  it('reports invariant 12 when the brake forgets the instances it replaced for health (unhealthyWindow 0), in a hand-written schedule', async () => {
    // Unbroken: the silent one is replaced, then the brake trips on the other and holds it (until
    // 10:00 at least: the window runs 270 s from the replaced one's departure and its
    // replacement's first report; after that the brake releases, by design).
    const held = await runScenario(CORRELATED);
    expect(held.violations).toEqual([]);
    const untilTen = held.trace[3] ?? '';
    expect(untilTen).toMatch(/^#2 0:10:00 wait => delete web\/i-\w+ unhealthy, .*brakeTripped web\/- maxUnhealthy/);
    expect(untilTen).not.toMatch(/delete web\/i-\w+ terminated/);
    expect(held.trace[4]).toMatch(/brakeReleased web\/- maxUnhealthy, delete web\/i-\w+ terminated/);
    plantBrakeTiming({ unhealthyWindowMs: 0 });
    const result = await runScenario(CORRELATED);
    expect(result.violations[0]?.invariant).toBe('12');
    expect(result.violations[0]?.message).toMatch(/delete \(terminated\) of i-\w+ \(freeze of 2 at .*\) while 1 were unhealthy and 1 of its failure replaced for health within unhealthyWindow \(270s\), more than maxUnhealthy 1/);
  });

  it('reports the lifecycle check when a plan drains an instance twice and the store lets it (its transition guard undone)', async () => {
    // LocalDb.transition refuses draining -> draining itself; with the guard undone, the checker
    // must still see the second drain on its own.
    type Writable = { writeFields(id: string, patch: Record<string, unknown>): void };
    vi.spyOn(LocalDb.prototype, 'transition').mockImplementation(function (this: LocalDb, id, to, patch, audit) {
      return this.transaction(() => {
        (this as unknown as Writable).writeFields(id, { ...patch, status: to });
        this.appendAudit({ ...audit, instanceId: id });
        return this.getInstance(id)!;
      });
    });
    plantInPlan((plan) => ({ ...plan, actions: plan.actions.flatMap((a): PlanAction[] => (a.kind === 'drain' ? [a, a] : [a])) }));
    const found = await firstViolation();
    expect(found.invariant).toBe('lifecycle');
    expect(found.report).toMatch(/drained again \(\w+\) while draining/);
  });
});
