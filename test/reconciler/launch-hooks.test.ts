/**
 * Launch hooks in the pure plan: an instance whose hook is pending is not in service, counts like
 * a booting one for the size, the surge cap and the budgets, and a hook nobody completes times
 * out as the group's `onTimeout` says.
 */
import { describe, expect, it } from 'vitest';
import { NO_DISRUPTION_LIMITS, planGroup, type InstanceRecord, type LaunchHookSettings, type PlanInput } from '../../src/index.js';
import { groupSettings, instanceRecord } from '../helpers/plan-fixtures.js';

const NOW = Date.UTC(2026, 0, 10);
const MIN = 60_000;
const HOOK: LaunchHookSettings = { timeoutMs: 10 * MIN, onTimeout: 'abandon' };

let seq = 0;
function inst(over: Partial<InstanceRecord> = {}): InstanceRecord {
  seq++;
  return instanceRecord(`i-${String(seq).padStart(4, '0')}`, NOW, over);
}

/** A new instance, confirmed 2 minutes ago and reporting health, whose launch hook is pending. */
function hooked(over: Partial<InstanceRecord> = {}): InstanceRecord {
  return inst({ createdAt: new Date(NOW - 3 * MIN), confirmedAt: new Date(NOW - 2 * MIN), healthAt: new Date(NOW - 5_000), firstHealthAt: new Date(NOW - MIN), launchHook: 'pending', ...over });
}

function input(instances: InstanceRecord[], over: Partial<PlanInput> = {}, hook: LaunchHookSettings | null = HOOK, settings: Parameters<typeof groupSettings>[0] = {}): PlanInput {
  return {
    tenant: 't',
    group: 'g',
    settings: groupSettings({ launchHook: hook, ...settings }),
    shard: { healthCheckIntervalMs: MIN, missedHealthThreshold: 3, defaultDrainTimeoutMs: 5 * MIN },
    instances,
    inFlight: new Set<string>(),
    now: NOW,
    observingSince: NOW - 24 * 60 * MIN,
    createHold: null,
    maxAttempts: 8,
    ...over,
  };
}

describe('launch hooks in the plan', () => {
  it('does not count an instance whose launch hook is pending as in service, though it counts toward the size', () => {
    const waiting = hooked();
    const plan = planGroup(input([inst(), inst(), waiting]));
    expect(plan.summary).toMatchObject({ size: 3, live: 3, inService: 2, pending: 1, launchHookPending: 1 });
    // At size: no create for it (it counts as a booting instance does).
    expect(plan.actions).toEqual([]);
    const deadline = NOW - 2 * MIN + 10 * MIN;
    expect(plan.blocked).toContainEqual(expect.objectContaining({ code: 'LaunchHookPending', instanceId: waiting.id, until: new Date(deadline) }));
    // (Health deadlines may come first; the hook's timeout is never missed.)
    expect(plan.wakeAt!.getTime()).toBeLessThanOrEqual(deadline);
  });

  it('counts a pending launch hook toward the surge cap', () => {
    // Size 5 with maxSurge 0: 3 in service + 1 waiting for its hook = 4 live, one more is created.
    const full = planGroup(input([inst(), inst(), inst(), hooked()], {}, HOOK, { size: 5, maxSurge: 0 }));
    expect(full.summary).toMatchObject({ live: 4, inService: 3, pending: 1 });
    expect(full.actions.filter((a) => a.kind === 'create')).toHaveLength(1);
    const capped = planGroup(input([inst(), inst(), inst(), hooked()], {}, HOOK, { size: 4, maxSurge: 0, templateHash: 'h2' }));
    // A drift rotation would need room beyond the cap: the hooked instance takes it.
    expect(capped.actions.filter((a) => a.kind === 'create')).toEqual([]);
    expect(capped.blocked.map((b) => b.code)).toContain('SurgeCap');
  });

  it('keeps a rotation waiting, and its budget used, while the replacement’s launch hook is pending', () => {
    const target = inst({ templateHash: 'old' });
    const other = inst({ templateHash: 'old' });
    const replacement = hooked({ createReason: 'drift', replaces: target.id });
    const disruption = { ...NO_DISRUPTION_LIMITS, budgets: [{ index: 0, max: { count: 1 }, reasons: ['drift' as const], window: null }] };
    const plan = planGroup(input([target, other, inst(), replacement], {}, HOOK, { disruption, maxSurge: 2 }));
    expect(plan.actions.filter((a) => a.kind === 'drain')).toEqual([]);
    expect(plan.blocked).toContainEqual(expect.objectContaining({ code: 'WaitingForHealthy', instanceId: target.id, message: expect.stringContaining('launch hook') }));
    expect(plan.summary.disruption.budgets.drift).toMatchObject({ used: 1, allowed: 0 });
    // The other drifted instance waits for the budget the pending rotation holds.
    expect(plan.actions.filter((a) => a.kind === 'create')).toEqual([]);
    expect(plan.blocked).toContainEqual(expect.objectContaining({ code: 'BudgetExhausted', instanceId: other.id }));

    // Once the hook is continued, the replacement is in service and the target drains.
    const continued = planGroup(input([target, other, inst(), { ...replacement, launchHook: 'continued', launchHookAt: new Date(NOW - 1_000) }], {}, HOOK, { disruption, maxSurge: 2 }));
    expect(continued.actions).toContainEqual(expect.objectContaining({ kind: 'drain', instanceId: target.id, reason: 'drift' }));
  });

  it('does not rotate an instance that waits for its launch hook', () => {
    const plan = planGroup(input([inst(), inst(), hooked({ templateHash: 'old' })], {}, HOOK, { maxSurge: 1 }));
    expect(plan.actions.filter((a) => a.kind === 'create')).toEqual([]);
  });

  it('picks an instance waiting for its launch hook before one in service on scale-down', () => {
    const waiting = hooked();
    const plan = planGroup(input([inst(), inst(), waiting], {}, HOOK, { size: 2 }));
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'drain', instanceId: waiting.id, reason: 'scaleDown' })]);
  });

  it('continues a launch hook that times out with onTimeout continue, and deletes nothing', () => {
    const late = hooked({ confirmedAt: new Date(NOW - 10 * MIN) });
    const plan = planGroup(input([inst(), inst(), late], {}, { timeoutMs: 10 * MIN, onTimeout: 'continue' }));
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'launchHook', instanceId: late.id, result: 'continue', cause: 'timeout' })]);
    expect(plan.blocked.filter((b) => b.code === 'LaunchHookPending')).toEqual([]);
  });

  it('abandons a launch hook that times out with onTimeout abandon; the next plan deletes it without a drain and replaces it', () => {
    const late = hooked({ confirmedAt: new Date(NOW - 10 * MIN) });
    const others = [inst(), inst()];
    const plan = planGroup(input([...others, late]));
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'launchHook', instanceId: late.id, result: 'abandon', cause: 'timeout' })]);
    const next = planGroup(input([...others, { ...late, launchHook: 'abandoned', launchHookAt: new Date(NOW) }]));
    expect(next.actions).toContainEqual(expect.objectContaining({ kind: 'delete', instanceId: late.id, reason: 'launchHookAbandoned' }));
    expect(next.actions).toContainEqual(expect.objectContaining({ kind: 'create', reason: 'launchHookAbandoned', replaces: late.id }));
    expect(next.actions.filter((a) => a.kind === 'drain')).toEqual([]);
  });

  it('does not time a hook out one millisecond early', () => {
    const almost = hooked({ confirmedAt: new Date(NOW - 10 * MIN + 1) });
    const plan = planGroup(input([inst(), inst(), almost]));
    expect(plan.actions).toEqual([]);
    expect(plan.wakeAt?.getTime()).toBe(NOW + 1);
  });

  it('replaces an instance whose launch hook was abandoned', () => {
    const abandoned = hooked({ launchHook: 'abandoned', launchHookAt: new Date(NOW - 1_000) });
    const plan = planGroup(input([inst(), inst(), abandoned]));
    expect(plan.actions).toContainEqual(expect.objectContaining({ kind: 'delete', instanceId: abandoned.id, reason: 'launchHookAbandoned' }));
    expect(plan.actions).toContainEqual(expect.objectContaining({ kind: 'create', reason: 'launchHookAbandoned', replaces: abandoned.id }));
    expect(plan.summary.inService).toBe(2);
  });

  it('continues a pending hook once the group no longer has a launch hook', () => {
    const waiting = hooked();
    const plan = planGroup(input([inst(), inst(), waiting], {}, null));
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'launchHook', instanceId: waiting.id, result: 'continue', cause: 'unconfigured' })]);
  });

  it('counts an instance in service once its hook is continued', () => {
    const plan = planGroup(input([inst(), inst(), hooked({ launchHook: 'continued', launchHookAt: new Date(NOW - 1_000) })]));
    expect(plan.summary).toMatchObject({ inService: 3, pending: 0, launchHookPending: 0 });
  });
});
