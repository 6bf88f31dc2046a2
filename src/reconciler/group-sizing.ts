/**
 * GroupSizer: the size decision of a group from what is recorded (operator state) and the
 * config, and, on the leader before each pass, the records and audit that go with it.
 *
 * - `decide` reads; it never writes, so followers and dry runs may call it.
 * - `beforePass` (leader only) records when the config's size was first seen or changed (the
 *   config's size is in force from then until a later schedule, operator or autoscale size; it
 *   counts from when this server loaded it), ends a sleep whose
 *   `until` has passed, and audits each change of the size nobody else audits: a schedule
 *   firing, a config change, a clamp, a wake by the clock. A change is audited once: the size
 *   last applied is kept with the record, so a restart or a failover does not audit it again.
 * - `sleep` and `wake` (leader only, for the API) write a tenant's sleep and audit it once per
 *   group with the operator's name; the group passes that follow apply it without auditing.
 */
import { configuredGroups, groupSizing, type DroverConfig } from '../config/index.js';
import { Priority } from '../queue/priority.js';
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
    await this.endExpiredSleep(config, tenant, now, event);
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
    if (!before) return decision;
    // Sleep and wake are audited by whoever starts or ends the sleep: the API (with the
    // operator's name) or endExpiredSleep (the clock). The API and the autoscaler audit the sizes
    // they set. Everything else (a schedule firing, a config change, a clamp) is audited here.
    if (decision.sleeping || before.by.startsWith('sleep@')) return decision;
    if ((decision.source === 'operator' || decision.source === 'autoscale') && before.by !== by) return decision;
    ctx.store.appendAudit({
      tenant,
      group,
      at: now,
      instanceId: null,
      action: 'scale',
      reason: decision.source,
      event,
      actor: 'reconciler',
      detail: `size ${before.size} -> ${decision.size}: ${decision.reason}`,
      epoch: ctx.epoch(),
    });
    ctx.log.info({ tenant, group, from: before.size, to: decision.size, source: decision.source }, 'group size changed');
    return decision;
  }

  /** The tenant's sleep, while it lasts (one whose `until` has passed is over). */
  sleepOf(tenant: string, now = this.ctx.clock.nowMs()): TenantSleep | null {
    const sleep = this.ctx.operatorState().get<TenantSleep>(keys.sleep(tenant));
    return sleep && (sleep.until === null || Date.parse(sleep.until) > now) ? sleep : null;
  }

  /**
   * Puts a tenant to sleep (or changes when it wakes, keeping when and by whom it was put to
   * sleep): its groups' size becomes 0 at their next pass. Audited here, once per configured
   * group, with the operator's name. The caller checks the tenant and `until`.
   */
  async sleep(config: DroverConfig, tenant: string, until: Date | null, actor: string): Promise<SleepChange> {
    const { ctx } = this;
    const now = ctx.clock.now();
    const current = this.sleepOf(tenant, now.getTime());
    const sleep: TenantSleep = { until: until ? until.toISOString() : null, at: current?.at ?? now.toISOString(), by: current?.by ?? actor };
    const groups = tenantGroups(config, tenant);
    const awake = new Map(groups.map((g) => [g, this.decide(config, tenant, g, now.getTime())?.awakeSize ?? 0]));
    await ctx.operatorState().set(keys.sleep(tenant), sleep);
    const when = until ? `until ${until.toISOString()}` : 'until woken';
    for (const group of groups) {
      const detail = current ? `asleep ${when} (was ${current.until ? `until ${current.until}` : 'until woken'})` : `size ${awake.get(group)} -> 0: asleep ${when}`;
      ctx.store.appendAudit({ tenant, group, at: now, instanceId: null, action: 'sleep', reason: 'sleep', event: null, actor, detail, epoch: ctx.epoch() });
    }
    ctx.log.info({ tenant, until: sleep.until, groups: groups.length, actor }, current ? 'tenant sleep changed' : 'tenant put to sleep');
    for (const group of groups) ctx.markDirty(tenant, group, 'sleep', Priority.high);
    return { tenant, groups, sleep, changed: true };
  }

  /** Wakes a sleeping tenant (nothing to do when it is awake): audited once per configured group. */
  async wake(config: DroverConfig, tenant: string, actor: string): Promise<SleepChange> {
    const { ctx } = this;
    const now = ctx.clock.now();
    const groups = tenantGroups(config, tenant);
    const current = this.sleepOf(tenant, now.getTime());
    // A sleep whose `until` has passed is over already: the clock's wake (endExpiredSleep) audits it.
    if (!current) return { tenant, groups, sleep: null, changed: false };
    await ctx.operatorState().set(keys.sleep(tenant), null);
    this.auditWake(config, tenant, groups, now, actor, null, `woken by ${actor}`);
    ctx.log.info({ tenant, groups: groups.length, actor }, 'tenant woken');
    for (const group of groups) ctx.markDirty(tenant, group, 'wake', Priority.high);
    return { tenant, groups, sleep: null, changed: true };
  }

  /** Ends a sleep whose `until` has passed (woken by the clock), audited once for each group of the tenant. */
  private async endExpiredSleep(config: DroverConfig, tenant: string, now: Date, event: string | null): Promise<void> {
    const state = this.ctx.operatorState();
    const sleep = state.get<TenantSleep>(keys.sleep(tenant));
    if (!sleep?.until || Date.parse(sleep.until) > now.getTime()) return;
    await state.set(keys.sleep(tenant), null);
    const groups = tenantGroups(config, tenant);
    this.auditWake(config, tenant, groups, now, 'reconciler', event, `its sleep ended at ${sleep.until}`);
    this.ctx.log.info({ tenant, until: sleep.until, groups: groups.length }, 'tenant woken: its sleep ended');
    // The other groups of the tenant have a timer for `until` too; marking them is for a server
    // that was down then (its timers fire at start anyway) and costs one pass.
    for (const group of groups) this.ctx.markDirty(tenant, group, 'wake', Priority.normal);
  }

  private auditWake(config: DroverConfig, tenant: string, groups: readonly string[], now: Date, actor: string, event: string | null, why: string): void {
    for (const group of groups) {
      const size = this.decide(config, tenant, group, now.getTime())?.awakeSize ?? 0;
      this.ctx.store.appendAudit({ tenant, group, at: now, instanceId: null, action: 'wake', reason: 'sleep', event, actor, detail: `size 0 -> ${size}: ${why}`, epoch: this.ctx.epoch() });
    }
  }
}

/** What a sleep or wake did: the tenant's configured groups and the sleep now in force (null: awake). */
export interface SleepChange {
  tenant: string;
  groups: string[];
  sleep: TenantSleep | null;
  /** False when there was nothing to do (a wake of a tenant that is awake). */
  changed: boolean;
}

function tenantGroups(config: DroverConfig, tenant: string): string[] {
  return configuredGroups(config)
    .filter((g) => g.tenant === tenant)
    .map((g) => g.group);
}

/** What set the size in force, as recorded with the size last audited. */
function appliedBy(d: SizeDecision): string {
  if (d.sleeping) return `sleep@${d.sleeping.since.toISOString()}`;
  return `${d.source}@${d.since.toISOString()}`;
}
