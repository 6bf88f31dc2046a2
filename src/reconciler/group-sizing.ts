/**
 * GroupSizer: the size decision of a group from what is recorded (operator state) and the
 * config, and, on the leader before each pass, the records and audit that go with it.
 *
 * - `decide` reads; it never writes, so followers and dry runs may call it.
 * - `beforePass` (leader only) records when the config's size was first seen (the config's size
 *   is in force from then until a later schedule, operator or autoscale size), ends a sleep
 *   whose `until` has passed, and audits each change of the size it did not set through the API
 *   or the autoscaler: a schedule firing, a config change, a clamp, a sleep or a wake. A change
 *   is audited once: the size last audited is kept with the record, so a restart or a failover
 *   does not audit it again.
 */
import { groupSizing, type DroverConfig } from '../config/index.js';
import { keys, type AutoscaleState, type ConfigSizeSeen, type SizeOverride, type TenantSleep } from '../state/index.js';
import type { Context } from './context.js';
import { decideSize, type SizeDecision } from './sizing.js';

export class GroupSizer {
  /**
   * @param configSizeLoadedAt when this server loaded the group's configured size: its start, or
   *   the config change that set it. A size first recorded (or changed) counts from then, not from
   *   when a leader got round to recording it: a schedule that fired in between still wins.
   */
  constructor(
    private readonly ctx: Context,
    private readonly configSizeLoadedAt: (tenant: string, group: string) => number,
  ) {}

  /** The size decision of a configured group at `now` (default: the clock's now); null when not configured. */
  decide(config: DroverConfig, tenant: string, group: string, now = this.ctx.clock.nowMs()): SizeDecision | null {
    const sizing = groupSizing(config, tenant, group);
    if (!sizing) return null;
    const state = this.ctx.operatorState();
    const seen = state.get<ConfigSizeSeen>(keys.configSize(tenant, group));
    const override = state.get<SizeOverride>(keys.size(tenant, group));
    const sleep = state.get<TenantSleep>(keys.sleep(tenant));
    return decideSize({
      tenant,
      group,
      sizing,
      configSince: seen && seen.size === sizing.size ? Date.parse(seen.since) : Math.min(now, this.configSizeLoadedAt(tenant, group)),
      operator: override && override.base === sizing.size ? { size: override.size, at: Date.parse(override.at), by: override.by } : null,
      sleep: sleep ? { at: Date.parse(sleep.at), until: sleep.until === null ? null : Date.parse(sleep.until), by: sleep.by } : null,
      autoscale: sizing.autoscale ? (state.get<AutoscaleState>(keys.autoscale(tenant, group)) ?? null) : null,
      now,
    });
  }

  /** Leader only, before a group is planned: see the module comment. Returns the decision to plan with. */
  async beforePass(config: DroverConfig, tenant: string, group: string, event: string | null): Promise<SizeDecision | null> {
    const { ctx } = this;
    const state = ctx.operatorState();
    const now = ctx.clock.now();
    const sleep = state.get<TenantSleep>(keys.sleep(tenant));
    if (sleep?.until && Date.parse(sleep.until) <= now.getTime()) {
      // Its time is up: woken by the clock. (Each group of the tenant audits its own wake below.)
      await state.set(keys.sleep(tenant), null);
      ctx.log.info({ tenant, until: sleep.until }, 'tenant woken: its sleep ended');
    }
    const sizing = groupSizing(config, tenant, group);
    if (!sizing) return null;
    const seenKey = keys.configSize(tenant, group);
    let seen = state.get<ConfigSizeSeen>(seenKey);
    if (!seen || seen.size !== sizing.size) {
      const since = Math.min(now.getTime(), this.configSizeLoadedAt(tenant, group));
      seen = { size: sizing.size, since: new Date(since).toISOString(), ...(seen?.applied ? { applied: seen.applied } : {}) };
      await state.set(seenKey, seen);
    }
    const decision = this.decide(config, tenant, group, now.getTime());
    if (!decision) return null;
    const by = appliedBy(decision);
    const before = seen.applied;
    if (before && before.size === decision.size && before.by === by) return decision;
    await state.set(seenKey, { ...seen, applied: { size: decision.size, by } });
    // The API and the autoscaler audit the sizes they set; everything else is audited here.
    const setByOthers = !decision.sleeping && (decision.source === 'operator' || decision.source === 'autoscale') && before?.by !== by;
    if (!before || setByOthers) return decision;
    const wasAsleep = before.by.startsWith('sleep@');
    const action = decision.sleeping && !wasAsleep ? 'sleep' : !decision.sleeping && wasAsleep ? 'wake' : 'scale';
    ctx.store.appendAudit({
      tenant,
      group,
      at: now,
      instanceId: null,
      action,
      reason: decision.sleeping ? 'sleep' : decision.source,
      event,
      actor: decision.sleeping ? decision.sleeping.by : decision.source === 'operator' && decision.by ? decision.by : 'reconciler',
      detail: `size ${before.size} -> ${decision.size}: ${decision.reason}`,
      epoch: ctx.epoch(),
    });
    ctx.log.info({ tenant, group, from: before.size, to: decision.size, source: decision.source, sleeping: decision.sleeping !== null }, 'group size changed');
    return decision;
  }
}

/** What set the size in force, as recorded with the size last audited. */
function appliedBy(d: SizeDecision): string {
  if (d.sleeping) return `sleep@${d.sleeping.since.toISOString()}`;
  return `${d.source}@${d.since.toISOString()}`;
}
