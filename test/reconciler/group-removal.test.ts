/**
 * A group that disappears from the config is removed only after groupRemovalGrace: a config
 * saved in two steps, or cut short, must not drain a fleet.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { EventType } from '../../src/index.js';
import { Harness, configWith } from '../helpers/harness.js';

const MIN = 60_000;
const BOTH = { default: { web: { size: 2, template: 'web' }, api: { size: 2, template: 'web', drainTimeout: '1m' } } };
const WEB_ONLY = { default: { web: { size: 2, template: 'web' } } };

let h: Harness;
afterEach(async () => {
  await h.close();
});

const actions = (tenant: string, group: string): string[] => h.db.listAudit({ tenant, group }).filter((a) => a.instanceId === null).map((a) => a.action);

describe('group removal grace', () => {
  it('touches nothing while the removal is pending, and a config that brings the group back cancels it', async () => {
    h = await new Harness({ config: configWith(BOTH) }).start();
    h.reportHealthy();
    const before = h.byStatus('running', 'default', 'api').map((i) => i.id).sort();
    expect(h.loader.update(configWith(WEB_ONLY)).ok).toBe(true);
    await h.runHealthy(90_000, 10_000);
    expect(h.drains.filter((d) => d.group === 'default/api')).toEqual([]);
    const plan = h.reconciler.plan('default', 'api');
    expect(plan.actions).toEqual([]);
    const pending = plan.blocked.find((b) => b.code === 'RemovalPending');
    expect(pending?.until?.getTime()).toBe(h.db.getGroupState('default', 'api')!.removalSince!.getTime() + 2 * MIN);
    expect(h.loader.update(configWith(BOTH)).ok).toBe(true);
    await h.runHealthy(10 * MIN, 10_000);
    expect(h.drains.filter((d) => d.group === 'default/api')).toEqual([]);
    expect(h.byStatus('running', 'default', 'api').map((i) => i.id).sort()).toEqual(before);
    expect(actions('default', 'api')).toEqual(['removalPending', 'removalCancelled']);
    expect(h.db.getGroupState('default', 'api')?.removalSince).toBeNull();
  });

  it('drains the group once the grace has passed, and forgets the pending removal when nothing is left', async () => {
    h = await new Harness({ config: configWith(BOTH) }).start();
    h.reportHealthy();
    expect(h.loader.update(configWith(WEB_ONLY)).ok).toBe(true);
    const removedAt = h.clock.nowMs();
    await h.runHealthy(2 * MIN + 5_000, 1_000);
    const drains = h.drains.filter((d) => d.group === 'default/api');
    expect(drains.map((d) => d.reason)).toEqual(['groupRemoved', 'groupRemoved']);
    const drainStarts = h.db.listAudit({ tenant: 'default', group: 'api' }).filter((a) => a.action === 'drain').map((a) => a.at.getTime());
    for (const at of drainStarts) expect(at - removedAt).toBeGreaterThanOrEqual(2 * MIN);
    // A group without config drains with the shard's default drain timeout (5m here).
    await h.runHealthy(6 * MIN, 10_000);
    expect(h.live('default', 'api')).toHaveLength(0);
    expect(h.cloud('api')).toHaveLength(0);
    h.reconciler.enqueue({ type: EventType.GroupChanged, tenant: 'default', groupKey: 'api' });
    await h.settle();
    expect(h.db.getGroupState('default', 'api')?.removalSince).toBeNull();
  });

  it('keeps the grace\'s start across a restart, so a crash loop cannot postpone the removal for ever or cut it short', async () => {
    h = await new Harness({ config: configWith(BOTH) }).start();
    h.reportHealthy();
    expect(h.loader.update(configWith(WEB_ONLY)).ok).toBe(true);
    await h.runHealthy(60_000, 10_000);
    const since = h.db.getGroupState('default', 'api')?.removalSince;
    expect(since).toBeInstanceOf(Date);
    await h.crashAndRestart();
    expect(h.db.getGroupState('default', 'api')?.removalSince).toEqual(since);
    expect(h.drains.filter((d) => d.group === 'default/api')).toEqual([]);
    await h.runHealthy(70_000, 1_000);
    expect(h.drains.filter((d) => d.group === 'default/api')).toHaveLength(2);
  });

  it('removes at once with groupRemovalGrace 0s', async () => {
    h = await new Harness({ config: configWith(BOTH, { groupRemovalGrace: '0s' }) }).start();
    h.reportHealthy();
    expect(h.loader.update(configWith(WEB_ONLY, { groupRemovalGrace: '0s' })).ok).toBe(true);
    await h.run(1_000, 1_000);
    expect(h.drains.filter((d) => d.group === 'default/api').map((d) => d.reason)).toEqual(['groupRemoved', 'groupRemoved']);
  });

  it('refuses a config that empties every group, keeping the one in force', async () => {
    h = await new Harness({ config: configWith(BOTH) }).start();
    h.reportHealthy();
    const result = h.loader.update(configWith({}));
    expect(result.ok).toBe(false);
    expect(h.loader.getCurrent().groups.default?.api?.size).toBe(2);
    await h.runHealthy(10 * MIN, 10_000);
    expect(h.drains).toEqual([]);
  });
});
