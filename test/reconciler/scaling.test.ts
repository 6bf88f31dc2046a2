import { afterEach, describe, expect, it } from 'vitest';
import { EventType } from '../../src/index.js';
import { Harness, configWith } from '../helpers/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const web = (fields: Record<string, unknown>) => configWith({ default: { web: { template: 'web', ...fields } } });

describe('scaling', () => {
  it('creates instances until the group is at size, counting booting ones toward it', async () => {
    h = await new Harness({ config: web({ size: 4 }) }).start();
    expect(h.live()).toHaveLength(4);
    // Nothing reported healthy yet: no extra creates while they boot.
    await h.tick(60_000);
    expect(h.provider.stats.create).toBe(4);
    const plan = h.reconciler.plan('default', 'web');
    expect(plan.summary).toMatchObject({ pending: 4, inService: 0 });
    h.reportHealthy();
    expect(h.reconciler.plan('default', 'web').summary).toMatchObject({ pending: 0, inService: 4 });
  });

  it('follows a size change made in config', async () => {
    h = await new Harness({ config: web({ size: 2 }) }).start();
    h.reportHealthy();
    h.loader.update(web({ size: 5 }));
    await h.settle();
    expect(h.live()).toHaveLength(5);
  });

  it('does not count draining or unhealthy instances toward size', async () => {
    h = await new Harness({ config: web({ size: 3, drainTimeout: '10m' }) }).start();
    h.reportHealthy();
    const [sick] = h.byStatus('running');
    // Health overdue while the provider says it runs: drained as unhealthy, and replaced.
    await h.runHealthy(4 * 60_000, 10_000, [sick!.id]);
    expect(h.db.getInstance(sick!.id)?.status).toBe('draining');
    const serving = h.live().filter((i) => i.status === 'running');
    expect(serving).toHaveLength(3);
    expect(serving.map((i) => i.id)).not.toContain(sick!.id);
  });

  it('scales down unhealthy first, then never-healthy, then the oldest', async () => {
    h = await new Harness({ config: web({ size: 5, drainTimeout: '10m', maxSurge: 0 }) }).start();
    const all = h.byStatus('running');
    const [oldest, second, neverHealthy, overdue, youngest] = all;
    // Stagger ages: recreate order by timestamps is creation order; make two reports differ.
    await h.tick(1_000);
    for (const i of [oldest, second, overdue, youngest]) h.db.recordHealth(i!.id, h.clock.now());
    // `overdue` stops reporting; the rest keep reporting. Its health is overdue after 3 min.
    await h.runHealthy(3 * 60_000 + 5_000, 5_000, [overdue!.id, neverHealthy!.id]);
    // Before the check judges it, scale down by 3 (health checks still pending on the provider).
    h.loader.update(web({ size: 2, drainTimeout: '10m', maxSurge: 0 }));
    await h.settle();
    const draining = h.byStatus('draining').map((i) => i.id);
    expect(draining).toHaveLength(3);
    expect(draining).toEqual(expect.arrayContaining([overdue!.id, neverHealthy!.id, oldest!.id]));
    expect(draining).not.toContain(youngest!.id);
    expect(draining).not.toContain(second!.id);
    // The silent one left first (as unhealthy); scale-down then took the never-healthy one, then the oldest.
    expect(h.drains.map((d) => [d.instanceId, d.reason])).toEqual([
      [overdue!.id, 'unhealthy'],
      [neverHealthy!.id, 'scaleDown'],
      [oldest!.id, 'scaleDown'],
    ]);
  });

  it('drains scale-down victims when the drain timeout is above zero, and deletes at once when it is zero', async () => {
    h = await new Harness({ config: web({ size: 3, drainTimeout: '2m' }) }).start();
    h.reportHealthy();
    h.loader.update(web({ size: 2, drainTimeout: '2m' }));
    await h.settle();
    expect(h.byStatus('draining')).toHaveLength(1);
    expect(h.drains.map((d) => d.reason)).toEqual(['scaleDown']);
    expect(h.cloud()).toHaveLength(3);

    h.loader.update(web({ size: 1, drainTimeout: '0s' }));
    await h.settle();
    expect(h.drains).toHaveLength(1); // no new drain notice
    expect(h.byStatus('running')).toHaveLength(1);
    expect(h.cloud().length).toBeLessThanOrEqual(2);
  });

  it('never holds more than size + maxSurge live instances because of its own creates', async () => {
    h = await new Harness({ config: web({ size: 4, maxSurge: 1, drainTimeout: '10m' }) }).start();
    h.reportHealthy();
    let maxLive = 0;
    const unsubscribe = h.provider.onCall(() => {
      maxLive = Math.max(maxLive, h!.live().length);
    });
    // Three instances die at once; their replacements wait for the surge cap.
    const victims = h.byStatus('running').slice(0, 3);
    for (const v of victims) h.db.updateInstance(v.id, { unhealthyAt: h.clock.now() });
    h.reconciler.enqueue({ type: EventType.GroupChanged, tenant: 'default', groupKey: 'web' });
    await h.settle();
    expect(h.live().length).toBe(5);
    expect(h.reconciler.plan('default', 'web').blocked.map((b) => b.code)).toContain('SurgeCap');
    // Each drain that ends frees room for one more replacement.
    await h.runHealthy(11 * 60_000, 30_000);
    unsubscribe();
    expect(maxLive).toBeLessThanOrEqual(5);
    expect(h.byStatus('running')).toHaveLength(4);
  });

  it('spaces creates by createRateLimit without holding up other groups’ work', async () => {
    h = new Harness({
      config: configWith(
        { default: { web: { size: 4, template: 'web' }, worker: { size: 1, template: 'worker', drainTimeout: '5m' } } },
        { createRateLimit: '10s' },
      ),
    });
    await h.reconciler.start();
    const createTimes: number[] = [];
    h.provider.onCallStart((c) => {
      if (c.op === 'create') createTimes.push(c.at);
    });
    await h.run(60_000, 1_000);
    expect(createTimes.length).toBe(5);
    for (let i = 1; i < createTimes.length; i++) expect(createTimes[i]! - createTimes[i - 1]!).toBeGreaterThanOrEqual(10_000);

    // A drain ack for the worker group is handled at once even while web creates wait for their slot.
    h.reportHealthy();
    h.loader.update(
      configWith(
        { default: { web: { size: 8, template: 'web' }, worker: { size: 0, template: 'worker', drainTimeout: '5m' } } },
        { createRateLimit: '10s' },
      ),
    );
    await h.settle();
    const [draining] = h.byStatus('draining', 'default', 'worker');
    expect(draining).toBeDefined();
    h.reconciler.enqueue({ type: EventType.DrainAcked, tenant: 'default', groupKey: 'worker', instanceId: draining!.id });
    await h.settle();
    expect(h.db.getInstance(draining!.id)?.status).toBe('deleted');
    expect(h.byStatus('creating').length).toBeGreaterThan(0); // web creates still waiting their turn
  });
});
