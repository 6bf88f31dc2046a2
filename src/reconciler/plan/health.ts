/**
 * Phase 2 — health actions, and the two things that hold them: a group gone from the config
 * (nothing new is done until groupRemovalGrace has passed) and the health brake (maxUnhealthy).
 */
import type { InstanceRecord } from '../../store/types.js';
import { resolveQuantity } from '../disruption.js';
import type { Classified } from './classify.js';
import { earliest, inServiceSince, leftForHealth, PhaseBuilder, type PlanFrame } from './frame.js';
import type { Block, PhaseResult } from './types.js';

export interface HealthOutcome extends PhaseResult {
  shortCircuited: boolean;
  maxUnhealthy: number | null;
  /** What the brake counts (the live unhealthy ones when there is no brake). */
  brakeCount: number;
  /** Until when a removed group is left alone, or null. */
  removalPendingUntil: number | null;
}

export function healthActions(frame: PlanFrame, classified: Classified): HealthOutcome {
  const { input, now, disruption } = frame;
  const out = new PhaseBuilder(now);
  const maxUnhealthy = disruption.maxUnhealthy ? resolveQuantity(disruption.maxUnhealthy, frame.size) : null;
  const brake = maxUnhealthy === null ? null : healthBrake(input, disruption, maxUnhealthy, classified.unhealthyIds);
  const pending = input.settings === null ? (input.removalPendingUntil ?? null) : null;
  const removalPendingUntil = pending !== null && pending > now ? pending : null;
  if (brake) {
    out.wakeAt(brake.changesAt);
    // Instances that recover say so only by reporting again, which marks nothing: while the brake
    // holds, look again every health interval.
    if (brake.on) out.wakeAt(now + input.shard.healthCheckIntervalMs);
  }
  if (removalPendingUntil !== null) {
    // Gone from the config, perhaps only for a moment (a file saved in two steps): touch nothing yet.
    out.wakeAt(removalPendingUntil);
    out.blocked.push({
      code: 'RemovalPending',
      message: `the group is no longer in the config; its ${input.instances.length} instance(s) are removed at ${new Date(removalPendingUntil).toISOString()} unless the config brings it back first (groupRemovalGrace)`,
      until: new Date(removalPendingUntil),
    });
  } else if (brake?.on) {
    out.blocked.push(brake.block);
  } else {
    for (const c of classified.candidates) {
      // With a brake, failures that happen together are counted together before any is acted on.
      const settledAt = brake ? c.judgedAt + disruption.healthSettleMs : c.judgedAt;
      if (settledAt > now) {
        out.wakeAt(settledAt);
        out.blocked.push({ code: 'HealthSettling', instanceId: c.inst.id, message: `${c.reason}: acted on once failures that happen with it have been counted (healthSettle)`, until: new Date(settledAt) });
        continue;
      }
      out.leaving.set(c.inst.id, c.reason);
      out.actions.push(c.action);
      out.wakeAt(c.wakeAt);
    }
  }
  return { ...out.result(), shortCircuited: brake?.on ?? false, maxUnhealthy, brakeCount: brake?.count ?? classified.unhealthyIds.length, removalPendingUntil };
}

/**
 * The health brake's count and state. It counts the group's unhealthy instances (silent, stopped,
 * never started, being replaced for health) and those recently replaced for health: one counts
 * until `unhealthyWindow` after it left and until its replacement has reported healthy for that
 * long. So Drover's own remediation never lowers the count that holds it back: the brake lifts
 * only when instances recover or the window passes. `changesAt`: when the window alone changes
 * the count.
 */
export function healthBrake(
  input: { now: number; instances: readonly InstanceRecord[]; departed?: readonly InstanceRecord[] },
  disruption: { unhealthyWindowMs: number },
  maxUnhealthy: number,
  unhealthyIds: readonly string[],
): { on: boolean; count: number; changesAt: number | null; block: Block } {
  const now = input.now;
  const windowMs = disruption.unhealthyWindowMs;
  const replacementOf = new Map<string, InstanceRecord>();
  for (const i of [...input.instances, ...(input.departed ?? [])]) if (i.replaces) replacementOf.set(i.replaces, i);
  /** Until when each recent departure counts. */
  const departures: Array<{ id: string; until: number }> = [];
  let changesAt: number | null = null;
  for (const d of input.departed ?? []) {
    if (!leftForHealth(d) || d.deletedAt === null) continue;
    const leftUntil = d.deletedAt.getTime() + windowMs;
    const replacement = replacementOf.get(d.id);
    const live = replacement !== undefined && replacement.status !== 'deleted';
    // (A replacement waiting for its launch hook has not proved itself yet: in service counts from the hook's completion.)
    const firstHealth = live ? inServiceSince(replacement) : null;
    // A replacement still booting keeps it counting; without one (not made, or itself gone, when it
    // counts for itself) it counts for the window after it left.
    const provenAt = live ? (firstHealth === null ? Number.POSITIVE_INFINITY : firstHealth + windowMs) : Number.NEGATIVE_INFINITY;
    const until = Math.max(leftUntil, provenAt);
    if (until <= now) continue;
    departures.push({ id: d.id, until });
    if (Number.isFinite(until)) changesAt = earliest(now, changesAt, until);
  }
  const count = unhealthyIds.length + departures.length;
  const on = count > maxUnhealthy;
  // When the window alone brings the count down to the limit (if the live unhealthy ones allow it).
  let releaseAt: number | null = null;
  if (on && unhealthyIds.length <= maxUnhealthy) {
    const ends = departures.map((d) => d.until).sort((a, b) => a - b);
    const t = ends[count - maxUnhealthy - 1];
    releaseAt = t !== undefined && Number.isFinite(t) ? t : null;
  }
  const shown = (ids: readonly string[]): string => (ids.length > 8 ? `${ids.slice(0, 8).join(', ')}, ... (${ids.length})` : ids.join(', '));
  const parts = [`${unhealthyIds.length} unhealthy${unhealthyIds.length ? ` (${shown(unhealthyIds)})` : ''}`];
  if (departures.length) parts.push(`${departures.length} recently replaced for health (${shown(departures.map((d) => d.id))}), counted until their replacements prove healthy for unhealthyWindow`);
  const block: Block = {
    code: 'ShortCircuit',
    message: `health brake on: ${parts.join(' and ')} — ${count} in all, more than maxUnhealthy ${maxUnhealthy}: nothing is replaced for health until instances recover${releaseAt !== null ? ` or the window passes (${new Date(releaseAt).toISOString()})` : ''}`,
    instanceIds: [...unhealthyIds, ...departures.map((d) => d.id)],
    ...(releaseAt !== null ? { until: new Date(releaseAt) } : {}),
  };
  return { on, count, changesAt, block };
}
