/**
 * The shard-wide barrier (InitialReconcile): at start, on a leadership win and at each periodic
 * resync, the provider's list is compared with the store (`syncWithProvider`) while no group
 * handler runs, then groups are marked for a reconcile.
 *
 * - A start or a win retries what was given up (create holds, deletes out of attempts), takes
 *   drains from the provider's tags (rows may be stale from an earlier term), and looks at every
 *   known group.
 * - A periodic resync looks only at the groups the sync changed (every other group is already
 *   driven by its own timers), and schedules the next resync.
 * - A failed sync is retried like any failed event (failures.ts); the groups are marked anyway.
 */
import { configuredGroups, type DroverConfig } from '../config/index.js';
import { Priority } from '../queue/priority.js';
import type { Context } from './context.js';
import { EventType, groupKeyOf, type ReconcileEvent } from './events.js';
import { handleFailure } from './failures.js';
import { TimerKey } from './keys.js';
import type { ReconcilerStore } from './ports.js';
import { syncWithProvider } from './sync.js';

/** Every group the reconciler looks after: configured, or with live instances (once, in that order). */
export function knownGroups(store: Pick<ReconcilerStore, 'groupsWithLiveInstances'>, config: DroverConfig): Array<{ tenant: string; group: string }> {
  const seen = new Set<string>();
  const out: Array<{ tenant: string; group: string }> = [];
  for (const g of [...configuredGroups(config), ...store.groupsWithLiveInstances()]) {
    const key = groupKeyOf(g.tenant, g.group);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(g);
  }
  return out;
}

/**
 * Runs the barrier for the InitialReconcile events queued together. `onLeaderWin` is called
 * when one of them is a leadership win: agents connected to the previous leader get one full
 * health threshold to reconnect here before their silence counts.
 */
export async function initialReconcile(ctx: Context, events: readonly ReconcileEvent[], onLeaderWin: () => void): Promise<void> {
  const config = ctx.configLoader.getCurrent();
  const periodicOnly = events.every((e) => e.cause === 'resync');
  if (!periodicOnly) {
    ctx.store.clearCreateHolds();
    for (const row of ctx.store.listInstances({ status: 'deleting' })) {
      if (row.attempts >= config.shard.maxAttempts) ctx.store.updateInstance(row.id, { attempts: 0, nextAttemptAt: null });
    }
  }
  if (events.some((e) => e.cause === 'leader')) onLeaderWin();
  const started = ctx.clock.nowMs();
  let touched: Set<string> | null = null;
  try {
    const result = await syncWithProvider(ctx, config.shard.id, { fromTags: !periodicOnly });
    touched = result.touched;
    const { touched: _groups, ...figures } = result;
    ctx.log.info({ ...figures, ms: ctx.clock.nowMs() - started }, 'provider sync done');
  } catch (err) {
    const attempt = Math.max(0, ...events.map((e) => e.attempt ?? 0));
    handleFailure(ctx, '', '', { type: EventType.InitialReconcile, cause: events[0]?.cause ?? 'start', attempt }, err);
  }
  if (ctx.halted()) return;
  for (const { tenant, group } of knownGroups(ctx.store, config)) {
    if (periodicOnly && touched && !touched.has(groupKeyOf(tenant, group))) continue;
    ctx.markDirty(tenant, group, periodicOnly ? 'resync' : 'initial', Priority.bulk);
  }
  if (config.shard.resyncInterval > 0) {
    ctx.timers.set(TimerKey.resync, ctx.clock.nowMs() + config.shard.resyncInterval, { type: EventType.InitialReconcile, cause: 'resync' });
  }
}
