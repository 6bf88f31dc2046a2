/**
 * The decision core: one pure function from (group settings, observed instances, now) to a plan
 * of actions, each with its reason. It performs no I/O and reads no clock; the executor applies
 * the plan, and `Reconciler.plan` returns it as a dry run.
 *
 * Phases, each a function returning values (actions, blocks, a wake-up time, the instances it
 * takes out of service), merged here in order, as Nomad's scheduler does:
 * 1. classify — each instance's facts (launch hooks abandoned or timed out among them); health
 *    decisions become candidates (classify.ts)
 * 2. healthActions — the candidates, unless the health brake or a pending removal holds them (health.ts)
 * 3. rotationsInProgress — rotations under way and the budgets they use (rotations.ts)
 * 4. sizeActions — create, remove, or start new rotations at size (size.ts)
 * 5. resends — creates recorded but never sent (size.ts)
 *
 * Vocabulary:
 * - live: not deleted (creating, running, draining, deleting) — what the surge cap counts.
 * - active: creating or running and not leaving — what serves, or will serve, the group (an
 *   instance waiting for its launch hook is active, but not in service).
 * - covered target: an active instance being rotated (operator, expiry, drift) whose replacement exists;
 *   it keeps serving, but does not count toward `size`, until its replacement reports healthy.
 * - counted: active minus covered targets — compared with `size`.
 */
import { classify } from './classify.js';
import type { ReasonBudget } from '../disruption.js';
import { earliest, frameOf, servesNow } from './frame.js';
import { healthActions } from './health.js';
import { rotationsInProgress } from './rotations.js';
import { resends, sizeActions } from './size.js';
import type { PhaseResult, Plan, PlanAction, PlanInput } from './types.js';

export type { Block, BlockCode, GroupSummary, PhaseResult, Plan, PlanAction, PlanInput, ShardHealthSettings } from './types.js';
export { healthBrake } from './health.js';
export { pickVictims } from './size.js';

function mergeLeaving(...parts: ReadonlyArray<ReadonlyMap<string, string>>): Map<string, string> {
  const all = new Map<string, string>();
  for (const part of parts) for (const [id, why] of part) all.set(id, why);
  return all;
}

/** Plans one group. Pure: same input, same plan. */
export function planGroup(input: PlanInput): Plan {
  const frame = frameOf(input);
  const { now, size } = frame;

  const classified = classify(frame);
  const health = healthActions(frame, classified);
  const afterHealth = mergeLeaving(classified.leaving, health.leaving);
  const rotation = rotationsInProgress(frame, afterHealth, classified.unwell);
  const leaving = mergeLeaving(afterHealth, rotation.leaving);

  const active = input.instances.filter((i) => (i.status === 'running' || i.status === 'creating') && !afterHealth.has(i.id));
  const earlierActions = [...classified.actions, ...health.actions, ...rotation.actions];
  // (Read before the size phase takes its share of the ledger.)
  const expiryBudget = rotation.budgets.reason('expiry');
  const size_ = sizeActions(
    frame,
    {
      active,
      counted: active.filter((i) => !leaving.has(i.id) && !rotation.covered.has(i.id)),
      live: input.instances.filter((i) => !classified.forgotten.has(i.id)).length,
      leaving,
      covered: rotation.covered,
      replacementOf: rotation.replacementOf,
      budgets: rotation.budgets,
      anyDraining: classified.drainingCount > 0 || earlierActions.some((a) => a.kind === 'drain'),
    },
    health.removalPendingUntil !== null,
  );
  const allLeaving = mergeLeaving(leaving, size_.leaving);
  const resent = resends(frame, allLeaving);

  const phases: PhaseResult[] = [classified, health, rotation, size_, resent];
  const actions = withForcedExpiryNote(expiryBudget, phases.flatMap((p) => p.actions))
    // An instance chosen to leave needs no health check any more, nor its launch hook completed.
    .filter((a) => (a.kind !== 'check' && a.kind !== 'launchHook') || !allLeaving.has(a.instanceId));
  const sizing = input.sizing ?? null;
  const otherWake = earliest(now, ...phases.map((p) => p.wakeAt), sizing?.wakeAt?.getTime() ?? null);
  const silenceWake = earliest(now, ...phases.map((p) => p.silenceWakeAt));
  const wake = earliest(now, otherWake, silenceWake);
  const blocked = phases.flatMap((p) => p.blocked);
  const autoscaleBlock = sizing?.autoscale?.blocked;
  if (autoscaleBlock) {
    blocked.push({ code: 'AutoscaleBlocked', message: `autoscale keeps the size at ${sizing.size}: ${autoscaleBlock.message}`, since: autoscaleBlock.since });
  }

  let inService = 0;
  let pending = 0;
  let launchHookPending = 0;
  for (const i of active) {
    if (allLeaving.has(i.id)) continue;
    if (servesNow(i)) inService++;
    else pending++;
    if (i.status === 'running' && i.launchHook === 'pending') launchHookPending++;
  }
  return {
    tenant: input.tenant,
    group: input.group,
    configured: input.settings !== null,
    actions,
    blocked,
    wakeAt: wake === null ? null : new Date(wake),
    silenceWake: silenceWake !== null && silenceWake === wake ? { otherWakeAt: otherWake === null ? null : new Date(otherWake), staleAfterMs: frame.staleAfterMs } : null,
    summary: {
      size,
      live: input.instances.filter((i) => !classified.forgotten.has(i.id)).length,
      inService,
      pending,
      launchHookPending,
      draining: input.instances.filter((i) => i.status === 'draining').length + actions.filter((a) => a.kind === 'drain').length,
      unhealthy: classified.unhealthyIds.length,
      maxLive: size + frame.maxSurge,
      disruption: { budgets: rotation.budgets.all(), shortCircuited: health.shortCircuited, maxUnhealthy: health.maxUnhealthy, brakeCount: health.brakeCount },
    },
    sizing,
  };
}

/**
 * Forced expiry is a lifetime guarantee, not a voluntary disruption: it is not budgeted, and the
 * audit says so when it goes past a budget that would have stopped an eligible rotation.
 */
function withForcedExpiryNote(expiry: Pick<ReasonBudget, 'allowed' | 'limitedBy'>, actions: PlanAction[]): PlanAction[] {
  if (expiry.allowed !== 0) return actions;
  return actions.map((a) =>
    (a.kind === 'drain' || a.kind === 'delete') && a.reason === 'expiryForced'
      ? { ...a, message: `${a.message}; forced expiry is not budgeted and overrides ${expiry.limitedBy ?? 'the expiry budget'}` }
      : a,
  );
}
