/**
 * Property tests for the plan function over groups in the middle of rotations: replacements that
 * are healthy, booting, silent or judged unhealthy, scale-downs to zero, removed groups. They
 * state, for any input, what the simulator checks over time (invariants 1 to 3).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planGroup, type InstanceRecord, type PlanInput } from '../../src/index.js';
import { groupSettings, instanceRecord } from '../helpers/plan-fixtures.js';

const NOW = Date.UTC(2026, 0, 10);
const MIN = 60_000;
const INTERVAL = MIN;
const THRESHOLD = 3;
const STALE = INTERVAL * THRESHOLD;

const settings = groupSettings;

function record(id: string, over: Partial<InstanceRecord> = {}): InstanceRecord {
  return instanceRecord(id, NOW, over);
}

type Health = 'fresh' | 'stale' | 'never' | 'judged';

const arbMember = fc.record({
  status: fc.constantFrom<InstanceRecord['status']>('running', 'running', 'running', 'creating', 'draining', 'deleting'),
  health: fc.constantFrom<Health>('fresh', 'fresh', 'stale', 'never', 'judged'),
  drifted: fc.boolean(),
  ageMin: fc.integer({ min: 1, max: 3 * 24 * 60 }),
  checked: fc.constantFrom<InstanceRecord['providerStatus']>(null, null, 'running', 'stopped', 'notFound'),
  /** Index of the member this one replaces (a rotation in progress), if any. */
  replaces: fc.option(fc.nat(), { nil: null }),
  rotation: fc.constantFrom('drift', 'expiry'),
  drainReason: fc.constantFrom('scaleDown', 'unhealthy', 'expiry', 'drift'),
});

const arbInput: fc.Arbitrary<PlanInput> = fc
  .record({
    members: fc.array(arbMember, { minLength: 0, maxLength: 10 }),
    size: fc.integer({ min: 0, max: 8 }),
    maxSurge: fc.integer({ min: 0, max: 3 }),
    drainMin: fc.integer({ min: 0, max: 10 }),
    eligibleHours: fc.constantFrom(0, 0, 1, 24),
    removed: fc.boolean(),
    restartedMinAgo: fc.constantFrom(1, 2, 60, 24 * 60),
  })
  .map((r) => {
    const instances = r.members.map((m, i) => {
      const id = `i-${String(i).padStart(2, '0')}`;
      // A judged instance has not reported since it was judged (a report after it means it recovered).
      const healthAt = m.health === 'never' || m.status === 'creating' ? null : m.health === 'stale' ? new Date(NOW - STALE - MIN) : m.health === 'judged' ? new Date(NOW - 2 * MIN) : new Date(NOW - 10_000);
      const replaces = m.replaces === null || r.members.length < 2 ? null : `i-${String(m.replaces % r.members.length).padStart(2, '0')}`;
      return record(id, {
        status: m.status,
        providerId: m.status === 'creating' ? null : `p-${i}`,
        createdAt: new Date(NOW - m.ageMin * MIN),
        confirmedAt: m.status === 'creating' ? null : new Date(NOW - m.ageMin * MIN),
        healthAt,
        unhealthyAt: m.health === 'judged' && m.status === 'running' ? new Date(NOW - MIN) : null,
        templateHash: m.drifted ? 'h0' : 'h1',
        providerStatus: m.status === 'creating' ? null : m.checked,
        providerCheckedAt: m.checked ? new Date(NOW - 10_000) : null,
        replaces: replaces === id ? null : replaces,
        createReason: replaces ? m.rotation : 'scaleUp',
        drainStartedAt: m.status === 'draining' ? new Date(NOW - MIN) : null,
        drainDeadline: m.status === 'draining' ? new Date(NOW + 4 * MIN) : null,
        drainReason: m.status === 'draining' ? m.drainReason : null,
        deleteReason: m.status === 'deleting' ? 'scaleDown' : null,
      });
    });
    return {
      tenant: 't',
      group: 'g',
      settings: r.removed ? null : settings({ size: r.size, maxSurge: r.maxSurge, drainTimeoutMs: r.drainMin * MIN, eligibleAgeMs: r.eligibleHours * 60 * MIN }),
      shard: { healthCheckIntervalMs: INTERVAL, missedHealthThreshold: THRESHOLD, defaultDrainTimeoutMs: 5 * MIN },
      instances,
      inFlight: new Set<string>(),
      now: NOW,
      observingSince: NOW - r.restartedMinAgo * MIN,
      createHold: null,
      maxAttempts: 8,
    };
  });

const targets = (plan: ReturnType<typeof planGroup>): string[] => plan.actions.flatMap((a) => ('instanceId' in a ? [a.instanceId] : []));

describe('planGroup properties, mid-rotation', () => {
  it('acts on each instance at most once per plan (a rotation target is not also a scale-down victim)', () => {
    fc.assert(
      fc.property(arbInput, (input) => {
        const ids = targets(planGroup(input));
        expect(new Set(ids).size).toBe(ids.length);
      }),
      { numRuns: 2000 },
    );
  });

  it('drains or deletes for expiry or drift only when the replacement runs and has reported within the staleness window (no grace)', () => {
    fc.assert(
      fc.property(arbInput, (input) => {
        for (const action of planGroup(input).actions) {
          if ((action.kind !== 'drain' && action.kind !== 'delete') || (action.reason !== 'expiry' && action.reason !== 'drift')) continue;
          const ok = input.instances.some(
            (r) =>
              r.replaces === action.instanceId &&
              r.status === 'running' &&
              r.healthAt !== null &&
              r.unhealthyAt === null &&
              r.healthAt.getTime() + STALE > input.now,
          );
          expect(ok, `${action.kind} ${action.instanceId} for ${action.reason}`).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('never plans creates past size + maxSurge live instances', () => {
    fc.assert(
      fc.property(arbInput, (input) => {
        const plan = planGroup(input);
        const creates = plan.actions.filter((a) => a.kind === 'create').length;
        const live = input.instances.filter((i) => i.providerStatus !== 'notFound').length;
        if (creates > 0) expect(live + creates).toBeLessThanOrEqual((input.settings?.size ?? 0) + (input.settings?.maxSurge ?? 0));
      }),
      { numRuns: 2000 },
    );
  });

  it('never drains an instance already draining, and only finishes instances already deleting', () => {
    fc.assert(
      fc.property(arbInput, (input) => {
        const byId = new Map(input.instances.map((i) => [i.id, i]));
        for (const action of planGroup(input).actions) {
          if (!('instanceId' in action)) continue;
          const target = byId.get(action.instanceId);
          if (target?.status === 'draining') expect(action.kind).not.toBe('drain');
          if (target?.status === 'deleting') expect(['forget', 'dispatchDelete']).toContain(action.kind);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
