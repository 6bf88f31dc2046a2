import { NO_DISRUPTION_LIMITS, type GroupSettings, type InstanceRecord, type PlanInput } from '../../src/index.js';

const MIN = 60_000;

/**
 * An instance record as the plan sees it, for pure plan tests: running, healthy (reported 10 s
 * before `now`), created and confirmed an hour before `now`, template `web` at hash `h1`, in
 * group `t/g`; `over` changes any field.
 */
export function instanceRecord(id: string, now: number, over: Partial<InstanceRecord> = {}): InstanceRecord {
  return {
    id,
    tenant: 't',
    group: 'g',
    providerId: `p-${id}`,
    status: 'running',
    templateName: 'web',
    templateHash: 'h1',
    createReason: 'scaleUp',
    replaces: null,
    createdAt: new Date(now - 60 * MIN),
    confirmedAt: new Date(now - 60 * MIN),
    healthAt: new Date(now - 10_000),
    firstHealthAt: over.healthAt === null ? null : new Date(now - 55 * MIN),
    unhealthyAt: null,
    providerStatus: null,
    providerCheckedAt: null,
    drainStartedAt: null,
    drainDeadline: null,
    drainAckedAt: null,
    drainReason: null,
    noticeAt: null,
    noticeDeadline: null,
    attempts: 0,
    nextAttemptAt: null,
    lastError: null,
    deletedAt: null,
    deleteReason: null,
    launchHook: null,
    launchHookAt: null,
    ...over,
  };
}

/** A group `t/g` of 3 on template `web` (hash `h1`): drain and startup timeouts 5 min, surge 1, no expiry, no disruption limits, no launch hook. */
export function groupSettings(over: Partial<GroupSettings> = {}): GroupSettings {
  return {
    tenant: 't',
    group: 'g',
    size: 3,
    templateName: 'web',
    template: {},
    templateHash: 'h1',
    drainTimeoutMs: 5 * MIN,
    maxSurge: 1,
    startupTimeoutMs: 5 * MIN,
    eligibleAgeMs: 0,
    forcedAgeMs: 0,
    disruption: NO_DISRUPTION_LIMITS,
    launchHook: null,
    ...over,
  };
}

/** A plan's input for `settings` at `now`: health every 60 s (2 missed: stale), nothing in flight, no create hold. */
export function planInput(settings: GroupSettings, instances: InstanceRecord[], now: number, over: Partial<PlanInput> = {}): PlanInput {
  return {
    tenant: settings.tenant,
    group: settings.group,
    settings,
    shard: { healthCheckIntervalMs: 60_000, missedHealthThreshold: 2, defaultDrainTimeoutMs: MIN },
    instances,
    inFlight: new Set(),
    now,
    observingSince: 0,
    createHold: null,
    maxAttempts: 5,
    ...over,
  };
}
