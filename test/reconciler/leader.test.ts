import { afterEach, describe, expect, it } from 'vitest';
import { EventType } from '../../src/index.js';
import { Harness, configWith } from '../helpers/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('leader only', () => {
  it('creates nothing while not the leader', async () => {
    h = await new Harness({ config: configWith({ default: { web: { size: 3, template: 'web' } } }), leader: false }).start();
    await h.tick(10 * 60_000);
    expect(h.provider.stats.create).toBe(0);
    expect(h.db.listInstances({ includeDeleted: true })).toHaveLength(0);
  });

  it('neither drains nor deletes while not the leader', async () => {
    h = await new Harness({ config: configWith({ default: { web: { size: 3, template: 'web', drainTimeout: '1m' } } }) }).start();
    h.reportHealthy();
    h.leader = false;
    h.loader.update(configWith({ default: { web: { size: 1, template: 'web', drainTimeout: '1m' } } }));
    const [victim] = h.byStatus('running');
    h.provider.setStatus(victim!.id, 'stopped');
    h.reconciler.enqueue({ type: EventType.CheckInstance, tenant: 'default', groupKey: 'web', instanceId: victim!.id });
    await h.run(10 * 60_000, 30_000);
    expect(h.drains).toHaveLength(0);
    expect(h.provider.stats.delete).toBe(0);
    expect(h.cloud()).toHaveLength(3);
  });

  it('checks leadership before every provider call, not only when an event is taken', async () => {
    // Creates are spaced 10 s apart, so all three are planned at once but called one by one.
    h = new Harness({ config: configWith({ default: { web: { size: 3, template: 'web' } } }, { createRateLimit: '10s' }) });
    await h.reconciler.start();
    await h.clock.advance(1);
    expect(h.provider.stats.create).toBe(1);
    h.leader = false; // lost between the first and the second call
    await h.clock.advance(60_000);
    expect(h.provider.stats.create).toBe(1);
    // The unsent creates stay recorded; a new leadership term sends them with the same ids.
    const recorded = h.byStatus('creating').map((i) => i.id);
    expect(recorded).toHaveLength(2);
    h.leader = true;
    h.reconciler.enqueue({ type: EventType.InitialReconcile });
    await h.run(60_000, 1_000);
    expect(h.cloud()).toHaveLength(3);
    expect(h.cloud().map((i) => i.idempotencyKey)).toEqual(expect.arrayContaining(recorded));
  });

  it('drains to zero, on InitialReconcile, a group that is gone from config but still has instances', async () => {
    h = await new Harness({
      config: configWith({ default: { web: { size: 2, template: 'web' }, old: { size: 2, template: 'web', drainTimeout: '1m' } } }),
    }).start();
    h.reportHealthy();
    expect(h.byStatus('running', 'default', 'old')).toHaveLength(2);
    // A restart with a config that no longer has the group.
    h.loader.update(configWith({ default: { web: { size: 2, template: 'web' } } }));
    await h.crashAndRestart();
    // Its removal waits groupRemovalGrace (2m by default) in case the config brings it back.
    expect(h.drains.filter((d) => d.group === 'default/old')).toEqual([]);
    expect(h.reconciler.plan('default', 'old').blocked.map((b) => b.code)).toContain('RemovalPending');
    await h.runHealthy(2 * 60_000 + 1_000);
    expect(h.drains.filter((d) => d.group === 'default/old').map((d) => d.reason)).toEqual(['groupRemoved', 'groupRemoved']);
    // A group without config drains with the shard's default drain timeout (5m here).
    await h.runHealthy(5 * 60_000 + 1_000);
    expect(h.live('default', 'old')).toHaveLength(0);
    expect(h.cloud('old')).toHaveLength(0);
    expect(h.byStatus('running')).toHaveLength(2);
  });
});
