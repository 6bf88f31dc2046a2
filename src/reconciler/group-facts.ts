/**
 * Group-level facts the reconciler keeps in the store and audits when they change: a group gone
 * from the config (its removal waits groupRemovalGrace) and the health brake tripping or
 * releasing.
 */
import { groupSettings, type DroverConfig } from '../config/index.js';
import type { Context } from './context.js';
import { describeEvent, type GroupEvent } from './events.js';
import type { Plan } from './plan.js';

export function trackRemoval(ctx: Context, config: DroverConfig, tenant: string, group: string, events: readonly GroupEvent[]): void {
  const configured = groupSettings(config, tenant, group) !== null;
  const since = ctx.store.getGroupState(tenant, group)?.removalSince ?? null;
  const now = ctx.clock.now();
  const event = events.length > 0 ? describeEvent(events[0] as GroupEvent) : null;
  if (configured && since !== null) {
    ctx.store.transaction(() => {
      ctx.store.setRemovalSince(tenant, group, null);
      ctx.store.appendAudit({ tenant, group, at: now, instanceId: null, action: 'removalCancelled', reason: 'config', event, detail: `back in the config ${Math.round((now.getTime() - since.getTime()) / 1000)}s after it left; nothing was removed`, epoch: ctx.epoch() });
    });
    ctx.log.info({ tenant, group }, 'group back in the config; its removal is cancelled');
  } else if (!configured && since === null) {
    if (ctx.store.liveInstances(tenant, group).length === 0) return;
    const grace = config.shard.groupRemovalGrace;
    ctx.store.transaction(() => {
      ctx.store.setRemovalSince(tenant, group, now);
      ctx.store.appendAudit({ tenant, group, at: now, instanceId: null, action: 'removalPending', reason: 'groupRemoved', event, detail: `no longer in the config; its instances are removed at ${new Date(now.getTime() + grace).toISOString()} unless it comes back first`, epoch: ctx.epoch() });
    });
    ctx.log.warn({ tenant, group, graceMs: grace }, 'group no longer in the config; removal pending');
  } else if (!configured && ctx.store.liveInstances(tenant, group).length === 0) {
    ctx.store.setRemovalSince(tenant, group, null);
  }
}

/** Audits (and keeps, for since when) the moments a group's health brake trips and releases. */
export function trackBrake(ctx: Context, plan: Plan, events: readonly GroupEvent[]): void {
  const { tenant, group } = plan;
  const since = ctx.store.getGroupState(tenant, group)?.brakeSince ?? null;
  const on = plan.summary.disruption.shortCircuited;
  if (on === (since !== null)) return;
  const now = ctx.clock.now();
  const event = events.length > 0 ? describeEvent(events[0] as GroupEvent) : null;
  const { brakeCount, maxUnhealthy } = plan.summary.disruption;
  const block = plan.blocked.find((b) => b.code === 'ShortCircuit');
  ctx.store.transaction(() => {
    ctx.store.setBrakeSince(tenant, group, on ? now : null);
    ctx.store.appendAudit({
      tenant,
      group,
      at: now,
      instanceId: null,
      action: on ? 'brakeTripped' : 'brakeReleased',
      reason: 'maxUnhealthy',
      event,
      detail: on
        ? `${brakeCount} unhealthy or recently replaced for health, more than maxUnhealthy ${maxUnhealthy ?? '?'}: ${block?.message ?? ''}`
        : `${brakeCount} unhealthy or recently replaced for health, within maxUnhealthy ${maxUnhealthy ?? 'none'}; held ${Math.round((now.getTime() - (since?.getTime() ?? now.getTime())) / 1000)}s`,
      epoch: ctx.epoch(),
    });
  });
  if (on) ctx.log.warn({ tenant, group, count: brakeCount, maxUnhealthy }, 'health brake tripped');
  else ctx.log.info({ tenant, group, count: brakeCount, maxUnhealthy }, 'health brake released');
}
