import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planGroup, type InstanceRecord, type LaunchHookSettings, type PlanInput } from '../../src/index.js';
import { groupSettings, instanceRecord } from '../helpers/plan-fixtures.js';

const NOW = Date.UTC(2026, 0, 10);
const MIN = 60_000;

const settings = groupSettings;

let seq = 0;
function inst(over: Partial<InstanceRecord> = {}): InstanceRecord {
  seq++;
  return instanceRecord(`i-${String(seq).padStart(4, '0')}`, NOW, over);
}

function input(instances: InstanceRecord[], over: Partial<PlanInput> = {}): PlanInput {
  return {
    tenant: 't',
    group: 'g',
    settings: settings(),
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

const kinds = (plan: ReturnType<typeof planGroup>) => plan.actions.map((a) => a.kind);

describe('planGroup', () => {
  it('does nothing for a healthy group at size', () => {
    const plan = planGroup(input([inst(), inst(), inst()]));
    expect(plan.actions).toEqual([]);
    expect(plan.summary).toMatchObject({ size: 3, live: 3, inService: 3, pending: 0 });
    expect(plan.wakeAt).not.toBeNull(); // the next health deadline
  });

  it('marks a wake-up that is only for a health report going stale, with the next other wake-up', () => {
    const oldest = inst({ healthAt: new Date(NOW - 2 * MIN) });
    const plan = planGroup(input([oldest, inst({ healthAt: new Date(NOW - 30_000) })], { settings: settings({ size: 2, forcedAgeMs: 120 * MIN }) }));
    // The oldest report goes stale 3 intervals after it, before any instance's forced age.
    expect(plan.wakeAt?.getTime()).toBe(NOW + MIN);
    expect(plan.silenceWake).toEqual({ otherWakeAt: new Date(oldest.createdAt.getTime() + 120 * MIN), staleAfterMs: 3 * MIN });
  });

  it('does not mark a wake-up that another deadline sets first', () => {
    const draining = inst({ status: 'draining', drainReason: 'operator', drainDeadline: new Date(NOW + 10_000), healthAt: new Date(NOW) });
    const plan = planGroup(input([draining, inst({ healthAt: new Date(NOW - 2 * MIN) }), inst(), inst()]));
    expect(plan.wakeAt?.getTime()).toBe(NOW + 10_000);
    expect(plan.silenceWake).toBeNull();
  });

  it('asks the provider before judging an instance whose health is overdue', () => {
    const silent = inst({ healthAt: new Date(NOW - 4 * MIN) });
    const plan = planGroup(input([silent, inst(), inst()]));
    expect(plan.actions).toEqual([expect.objectContaining({ kind: 'check', instanceId: silent.id })]);
  });

  it('drains an overdue instance the provider saw running after its deadline, and replaces it', () => {
    const silent = inst({ healthAt: new Date(NOW - 4 * MIN), providerStatus: 'running', providerCheckedAt: new Date(NOW - 1_000) });
    const plan = planGroup(input([silent, inst(), inst()]));
    expect(plan.actions).toEqual([
      expect.objectContaining({ kind: 'drain', instanceId: silent.id, reason: 'unhealthy' }),
      expect.objectContaining({ kind: 'create', reason: 'unhealthy', replaces: silent.id }),
    ]);
  });

  it('ranks scale-down victims: overdue health, unsent creates, never-healthy, due for rotation, oldest', () => {
    const oldest = inst({ createdAt: new Date(NOW - 90 * MIN) });
    const young = inst({ createdAt: new Date(NOW - 10 * MIN) });
    const drifted = inst({ templateHash: 'old', createdAt: new Date(NOW - 20 * MIN) });
    const booting = inst({ healthAt: null, createdAt: new Date(NOW - 1 * MIN), confirmedAt: new Date(NOW - MIN) });
    const unsent = inst({ status: 'creating', providerId: null, healthAt: null, confirmedAt: null, createdAt: new Date(NOW - 1_000) });
    const overdue = inst({ healthAt: new Date(NOW - 4 * MIN) });
    const all = [oldest, young, drifted, booting, unsent, overdue];
    const order = [overdue, unsent, booting, drifted, oldest, young];
    for (let k = 1; k <= 5; k++) {
      const plan = planGroup(input(all, { settings: settings({ size: 6 - k, maxSurge: 0 }) }));
      const victims = plan.actions.filter((a) => a.kind === 'drain' || a.kind === 'cancelCreate').map((a) => ('instanceId' in a ? a.instanceId : ''));
      expect(new Set(victims)).toEqual(new Set(order.slice(0, k).map((i) => i.id)));
    }
  });

  it('deletes at once instead of draining when the drain timeout is zero', () => {
    const plan = planGroup(input([inst(), inst(), inst()], { settings: settings({ size: 2, drainTimeoutMs: 0 }) }));
    expect(kinds(plan)).toEqual(['delete']);
  });

  it('holds creates, and says why, while creates are held after a permanent error', () => {
    const plan = planGroup(input([], { createHold: 'quota exceeded' }));
    expect(plan.actions).toEqual([]);
    expect(plan.blocked).toEqual([expect.objectContaining({ code: 'ProviderErrors', message: expect.stringContaining('quota exceeded') })]);
  });

  it('does not send a create again while its call is in flight', () => {
    const creating = inst({ status: 'creating', providerId: null, healthAt: null });
    expect(kinds(planGroup(input([creating, inst(), inst()])))).toEqual(['dispatchCreate']);
    expect(planGroup(input([creating, inst(), inst()], { inFlight: new Set([creating.id]) })).actions).toEqual([]);
  });

  it('waits for a failed create’s retry time before sending it again', () => {
    const creating = inst({ status: 'creating', providerId: null, healthAt: null, attempts: 1, nextAttemptAt: new Date(NOW + 5_000), lastError: 'boom' });
    const plan = planGroup(input([creating, inst(), inst()]));
    expect(plan.actions).toEqual([]);
    expect(plan.wakeAt?.getTime()).toBe(NOW + 5_000);
  });
});

// ---- properties ------------------------------------------------------------------------------

const arbInstance = fc
  .record({
    status: fc.constantFrom<InstanceRecord['status']>('creating', 'running', 'running', 'running', 'draining', 'deleting'),
    ageMin: fc.integer({ min: 0, max: 3 * 24 * 60 }),
    healthAgoMin: fc.option(fc.integer({ min: 0, max: 30 }), { nil: null }),
    drifted: fc.boolean(),
    providerStatus: fc.constantFrom<InstanceRecord['providerStatus']>(null, null, null, 'running', 'stopped', 'notFound'),
    checkedAgoMin: fc.integer({ min: 0, max: 10 }),
    unhealthy: fc.boolean(),
    notice: fc.boolean(),
    acked: fc.boolean(),
    drainLeftMin: fc.integer({ min: -5, max: 30 }),
    drainReason: fc.constantFrom('scaleDown', 'unhealthy', 'expiry', 'drift', 'terminationNotice'),
    launchHook: fc.constantFrom<InstanceRecord['launchHook']>(null, null, 'pending', 'continued', 'abandoned'),
  })
  .map((r) =>
    inst({
      status: r.status,
      providerId: r.status === 'creating' ? null : `p-${++seq}`,
      createdAt: new Date(NOW - r.ageMin * MIN),
      confirmedAt: r.status === 'creating' ? null : new Date(NOW - r.ageMin * MIN),
      healthAt: r.status === 'creating' || r.healthAgoMin === null ? null : new Date(NOW - r.healthAgoMin * MIN),
      templateHash: r.drifted ? 'h0' : 'h1',
      providerStatus: r.status === 'creating' ? null : r.providerStatus,
      providerCheckedAt: r.providerStatus ? new Date(NOW - r.checkedAgoMin * MIN) : null,
      unhealthyAt: r.status === 'running' && r.unhealthy && r.healthAgoMin !== null ? new Date(NOW - MIN) : null,
      noticeDeadline: r.status === 'running' && r.notice ? new Date(NOW + 2 * MIN) : null,
      drainStartedAt: r.status === 'draining' ? new Date(NOW - 5 * MIN) : null,
      drainDeadline: r.status === 'draining' ? new Date(NOW + r.drainLeftMin * MIN) : null,
      drainAckedAt: r.status === 'draining' && r.acked ? new Date(NOW - 1_000) : null,
      drainReason: r.status === 'draining' ? r.drainReason : null,
      deleteReason: r.status === 'deleting' ? 'scaleDown' : null,
      launchHook: r.status === 'creating' && r.launchHook !== null ? 'pending' : r.launchHook,
      launchHookAt: r.launchHook === 'continued' || r.launchHook === 'abandoned' ? new Date(NOW - 2 * MIN) : null,
    }),
  );

const arbInput = fc
  .record({
    instances: fc.array(arbInstance, { maxLength: 14 }),
    size: fc.integer({ min: 0, max: 10 }),
    maxSurge: fc.integer({ min: 0, max: 3 }),
    drainTimeoutMin: fc.integer({ min: 0, max: 10 }),
    eligibleDays: fc.integer({ min: 0, max: 3 }),
    removed: fc.boolean(),
    launchHook: fc.constantFrom<LaunchHookSettings | null>(null, { timeoutMs: 30 * MIN, onTimeout: 'continue' }, { timeoutMs: 10 * MIN, onTimeout: 'abandon' }),
  })
  .map((r) =>
    input(r.instances, {
      settings: r.removed
        ? null
        : settings({ size: r.size, maxSurge: r.maxSurge, drainTimeoutMs: r.drainTimeoutMin * MIN, eligibleAgeMs: r.eligibleDays * 24 * 60 * MIN, launchHook: r.launchHook }),
    }),
  );

describe('planGroup properties', () => {
  it('is pure: the same input gives the same plan', () => {
    fc.assert(
      fc.property(arbInput, (i) => {
        expect(planGroup(i)).toEqual(planGroup(i));
      }),
    );
  });

  it('never plans creates that would take live instances above size + maxSurge', () => {
    fc.assert(
      fc.property(arbInput, (i) => {
        const plan = planGroup(i);
        const creates = plan.actions.filter((a) => a.kind === 'create').length;
        if (creates > 0) expect(plan.summary.live + creates).toBeLessThanOrEqual(plan.summary.maxLive);
      }),
    );
  });

  it('never counts an instance held by its launch hook (pending or abandoned) as in service', () => {
    fc.assert(
      fc.property(arbInput, (i) => {
        const plan = planGroup(i);
        const eligible = i.instances.filter((x) => x.status === 'running' && x.healthAt !== null && x.launchHook !== 'pending' && x.launchHook !== 'abandoned').length;
        expect(plan.summary.inService).toBeLessThanOrEqual(eligible);
        // And no rotation drains its target for a replacement its launch hook still holds.
        for (const a of plan.actions) {
          if (a.kind !== 'drain' || (a.reason !== 'expiry' && a.reason !== 'drift' && a.reason !== 'operator')) continue;
          const replacement = i.instances.find((x) => x.replaces === a.instanceId && x.status !== 'deleting');
          if (replacement) expect(['pending', 'abandoned']).not.toContain(replacement.launchHook);
        }
      }),
    );
  });

  it('acts on each instance at most once per plan', () => {
    fc.assert(
      fc.property(arbInput, (i) => {
        const ids = planGroup(i)
          .actions.filter((a) => a.kind !== 'create')
          .map((a) => ('instanceId' in a ? a.instanceId : ''));
        expect(new Set(ids).size).toBe(ids.length);
      }),
    );
  });

  it('never drains a healthy, current instance while the group is not above size', () => {
    fc.assert(
      fc.property(arbInput, (i) => {
        const plan = planGroup(i);
        const voluntary = plan.actions.filter((a) => a.kind === 'drain' && a.reason === 'scaleDown');
        if (voluntary.length > 0) {
          const counted = i.instances.filter((x) => x.status === 'running' || x.status === 'creating').length;
          expect(counted).toBeGreaterThan(i.settings?.size ?? 0);
        }
      }),
    );
  });

  it('drains for expiry or drift only once the replacement reports healthy', () => {
    fc.assert(
      fc.property(arbInput, (i) => {
        for (const action of planGroup(i).actions) {
          if (action.kind !== 'drain' || (action.reason !== 'expiry' && action.reason !== 'drift')) continue;
          const replacement = i.instances.find((x) => x.replaces === action.instanceId);
          expect(replacement?.healthAt).not.toBeNull();
        }
      }),
    );
  });

  it('never deletes a draining instance before its deadline unless acknowledged or dead', () => {
    fc.assert(
      fc.property(arbInput, (i) => {
        for (const action of planGroup(i).actions) {
          if (action.kind !== 'delete') continue;
          const target = i.instances.find((x) => x.id === action.instanceId)!;
          if (target.status !== 'draining') continue;
          const dead = target.providerStatus !== null && target.providerStatus !== 'running' && target.providerStatus !== 'pending';
          expect(target.drainAckedAt !== null || target.drainDeadline!.getTime() <= i.now || dead).toBe(true);
        }
      }),
    );
  });

  it('reaches size when every planned action succeeds and no fault intervenes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 12 }), fc.integer({ min: 1, max: 3 }), (start, size, maxSurge) => {
        let instances: InstanceRecord[] = Array.from({ length: start }, () => inst());
        for (let round = 0; round < 30; round++) {
          const plan = planGroup(input(instances, { settings: settings({ size, maxSurge, drainTimeoutMs: 0 }) }));
          if (plan.actions.length === 0) break;
          for (const a of plan.actions) {
            if (a.kind === 'create') instances.push(inst());
            if (a.kind === 'delete' || a.kind === 'cancelCreate') instances = instances.filter((x) => x.id !== a.instanceId);
          }
        }
        expect(instances).toHaveLength(size);
      }),
    );
  });
});
