/**
 * Assembles what the pure planner reads: the group's effective settings, its instances and
 * recent departures, create holds, a pending removal, and operator decisions (protection, holds,
 * drain requests).
 */
import type { DroverConfig, GroupSettings } from '../config/index.js';
import { keys, type DrainRequest, type Protection, type RotationHold } from '../state/index.js';
import type { GroupState, InstanceRecord } from '../store/index.js';
import type { Context } from './context.js';
import { HoldKey } from './keys.js';
import { planGroup, type Plan, type PlanInput } from './plan.js';
import type { SizeDecision } from './sizing.js';

/** How far back deleted instances are looked at (what a new instance replaces; the brake's window). */
const DEPARTED_WINDOW_MS = 60 * 60_000;

export interface PlanInputsDeps {
  ctx: Context;
  /** The group's settings, with the size in force (see sizing.ts). */
  effectiveSettings(config: DroverConfig, tenant: string, group: string): GroupSettings | null;
  /** What sets the group's size, and why (null when it is not configured). */
  sizeDecision(config: DroverConfig, tenant: string, group: string): SizeDecision | null;
  /** Since when health reports have been observed (start or leadership win). */
  observingSince(): number;
}

export class PlanInputs {
  constructor(private readonly deps: PlanInputsDeps) {}

  /** The plan of a group now; `sizeOverride` plans as if it had that size (a preview). */
  computePlan(config: DroverConfig, tenant: string, group: string, sizeOverride?: number): Plan {
    const { ctx } = this.deps;
    const now = ctx.clock.nowMs();
    const effective = this.deps.effectiveSettings(config, tenant, group);
    const settings = effective && sizeOverride !== undefined ? { ...effective, size: sizeOverride } : effective;
    // A preview at another size plans without the decision: it is not what sets the size then.
    const sizing = settings && sizeOverride === undefined ? this.deps.sizeDecision(config, tenant, group) : null;
    const state = ctx.store.getGroupState(tenant, group);
    // Not yet recorded (a dry run before the group's first reconcile): the grace starts now.
    const removalPendingUntil = settings === null ? (state?.removalSince?.getTime() ?? now) + config.shard.groupRemovalGrace : null;
    const hold = settings ? this.activeHold(state, settings, config) : null;
    const instances = ctx.store.liveInstances(tenant, group);
    return planGroup({
      tenant,
      group,
      settings,
      shard: {
        healthCheckIntervalMs: config.shard.healthCheckInterval,
        missedHealthThreshold: config.shard.missedHealthThreshold,
        defaultDrainTimeoutMs: config.shard.defaultDrainTimeout,
      },
      instances,
      // Recent departures: what new instances replace, and what the health brake still counts.
      departed: ctx.store.departedInstances(tenant, group, new Date(now - Math.max(DEPARTED_WINDOW_MS, 3 * (settings?.disruption.unhealthyWindowMs ?? 0)))),
      inFlight: ctx.inFlight,
      now,
      observingSince: this.deps.observingSince(),
      createHold: hold?.reason ?? null,
      createHoldUntil: hold?.until ?? null,
      maxAttempts: config.shard.maxAttempts,
      removalPendingUntil,
      sizing,
      ...this.operatorInputs(instances),
    });
  }

  /**
   * When the group's first health report goes stale, from the store alone (no plan): the oldest
   * report the plan judges, counted from when the reconciler began observing (as the plan does),
   * plus `staleAfterMs`. Null when no running instance has reported.
   */
  nextSilenceAt(tenant: string, group: string, staleAfterMs: number): number | null {
    const oldest = this.deps.ctx.store.earliestHealthAt(tenant, group);
    return oldest === null ? null : Math.max(oldest.getTime(), this.deps.observingSince()) + staleAfterMs;
  }

  /**
   * The create hold in force for a group, if its key still matches the group's size and template.
   * A hold set because retries ran out lasts one resync interval (10 min when resync is off).
   */
  private activeHold(state: GroupState | null, settings: GroupSettings, config: DroverConfig): { reason: string; until: number | null } | null {
    if (!state?.holdKey) return null;
    const reason = state.holdReason ?? 'provider error';
    if (state.holdKey === HoldKey.permanent(settings.size, settings.templateHash)) return { reason, until: null };
    if (state.holdKey === HoldKey.afterRetries(settings.size, settings.templateHash) && state.holdAt) {
      const until = state.holdAt.getTime() + (config.shard.resyncInterval || 600_000);
      return until > this.deps.ctx.clock.nowMs() ? { reason, until } : null;
    }
    return null;
  }

  /** Protection, held rotations and operator drain requests of these instances, from OperatorState. */
  operatorInputs(instances: readonly InstanceRecord[]): Pick<PlanInput, 'protectedUntil' | 'rotationHolds' | 'drainRequests'> {
    const protectedUntil = new Map<string, number>();
    const rotationHolds = new Map<string, number>();
    const drainRequests = new Map<string, { force: boolean }>();
    const state = this.deps.ctx.operatorState();
    // One lookup per instance and kind, only for the kinds the state holds at all (usually none:
    // at a million instances the lookups alone cost seconds a pass).
    const protections = state.anyIn(keys.protection(''));
    const holds = state.anyIn(keys.hold(''));
    const requests = state.anyIn(keys.drainRequest(''));
    if (!protections && !holds && !requests) return { protectedUntil, rotationHolds, drainRequests };
    for (const i of instances) {
      const protection = protections ? state.get<Protection>(keys.protection(i.id)) : undefined;
      if (protection) protectedUntil.set(i.id, Date.parse(protection.until));
      const hold = holds ? state.get<RotationHold>(keys.hold(i.id)) : undefined;
      if (hold) rotationHolds.set(i.id, Date.parse(hold.until));
      const request = requests ? state.get<DrainRequest>(keys.drainRequest(i.id)) : undefined;
      if (request) drainRequests.set(i.id, { force: request.force });
    }
    return { protectedUntil, rotationHolds, drainRequests };
  }
}
