import { afterEach, describe, expect, it } from 'vitest';
import { EventType } from '../../src/index.js';
import { Harness, configWith } from '../helpers/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const web = (size: number, shard: Record<string, unknown> = {}) => configWith({ default: { web: { size, template: 'web' } } }, shard);

describe('retries', () => {
  it('retries a failed create with exponential backoff and jitter, reusing the same instance id', async () => {
    h = new Harness({ config: web(1) });
    h.provider.failCreates(3);
    const attempts: Array<{ at: number; key: string }> = [];
    h.provider.onCallStart((c) => {
      if (c.op === 'create') attempts.push({ at: c.at, key: c.idempotencyKey ?? '' });
    });
    await h.start();
    await h.run(2 * 60_000, 500);
    expect(attempts).toHaveLength(4);
    expect(new Set(attempts.map((a) => a.key)).size).toBe(1);
    const gaps = attempts.slice(1).map((a, i) => a.at - attempts[i]!.at);
    // 5 s, 10 s, 20 s, each within ±20 % (plus the 500 ms step of this test's clock).
    [5_000, 10_000, 20_000].forEach((base, i) => {
      expect(gaps[i]).toBeGreaterThanOrEqual(base * 0.8);
      expect(gaps[i]).toBeLessThanOrEqual(base * 1.2 + 500);
    });
    expect(h.byStatus('running')).toHaveLength(1);
    expect(h.errors.filter((e) => e.group === 'default/web')).toHaveLength(3);
  });

  it('never retries a PermanentError, reports it, and holds creates until the config changes', async () => {
    h = new Harness({ config: web(2) });
    h.provider.failCreates(10, { permanent: true });
    await h.start();
    await h.run(30 * 60_000, 10_000);
    expect(h.provider.stats.create).toBe(2);
    expect(h.errors.some((e) => /permanent/.test(e.message))).toBe(true);
    expect(h.reconciler.plan('default', 'web').blocked.map((b) => b.code)).toContain('ProviderErrors');
    h.provider.clearFaults();
    h.loader.update({ ...web(2), templates: { web: { image: 'web:fixed' }, worker: { image: 'worker:1' } } });
    await h.settle();
    expect(h.byStatus('running')).toHaveLength(2);
  });

  it('gives up after the configured number of attempts, then tries again after a resync interval', async () => {
    h = new Harness({ config: web(1, { maxAttempts: 4, resyncInterval: '10m' }) });
    h.provider.failCreates(4);
    await h.start();
    await h.run(5 * 60_000, 5_000);
    expect(h.provider.stats.create).toBe(4);
    expect(h.errors.at(-1)?.message).toMatch(/gave up after 4 attempts; creates for the group wait for a pause of one resync interval/);
    expect(h.db.listInstances({ includeDeleted: true }).map((i) => i.deleteReason)).toEqual(['createFailed']);
    const held = h.reconciler.plan('default', 'web').blocked.find((b) => b.code === 'ProviderErrors');
    expect(held?.until).toBeDefined();
    // The outage is over; nothing happens until the pause ends, then the group is at size again.
    await h.run(held!.until!.getTime() - h.clock.nowMs() - 1_000, 5_000);
    expect(h.provider.stats.create).toBe(4);
    await h.run(10_000, 1_000);
    expect(h.provider.stats.create).toBe(5);
    expect(h.byStatus('running')).toHaveLength(1);
  });

  it('retries a failed event handler with backoff and stops after the attempts run out', async () => {
    h = await new Harness({ config: web(1, { maxAttempts: 3 }) }).start();
    h.reportHealthy();
    const [inst] = h.byStatus('running');
    h.provider.failNext('status', 100);
    const polls: number[] = [];
    h.provider.onCallStart((c) => {
      if (c.op === 'status') polls.push(c.at);
    });
    h.reconciler.enqueue({ type: EventType.CheckInstance, tenant: 'default', groupKey: 'web', instanceId: inst!.id });
    await h.runHealthy(5 * 60_000, 1_000);
    expect(polls).toHaveLength(3);
    expect(polls[1]! - polls[0]!).toBeGreaterThanOrEqual(4_000);
    expect(h.errors.at(-1)?.message).toMatch(/gave up after 3 attempts/);
  });

  it('does not treat waiting (surge cap, drains in progress) as an error', async () => {
    h = await new Harness({ config: configWith({ default: { web: { size: 3, template: 'web', maxSurge: 0, drainTimeout: '10m' } } }) }).start();
    h.reportHealthy();
    const [sick] = h.byStatus('running');
    h.db.updateInstance(sick!.id, { unhealthyAt: h.clock.now() });
    h.reconciler.enqueue({ type: EventType.GroupChanged, tenant: 'default', groupKey: 'web' });
    await h.runHealthy(5 * 60_000);
    expect(h.reconciler.plan('default', 'web').blocked.map((b) => b.code)).toContain('SurgeCap');
    expect(h.errors).toHaveLength(0);
  });

  it('retries a failed delete until it succeeds, so no drain is lost', async () => {
    h = await new Harness({ config: configWith({ default: { web: { size: 2, template: 'web', drainTimeout: '1m' } } }) }).start();
    h.reportHealthy();
    h.provider.failNext('delete', 2);
    h.loader.update(configWith({ default: { web: { size: 1, template: 'web', drainTimeout: '1m' } } }));
    await h.settle();
    const [victim] = h.byStatus('draining');
    await h.runHealthy(3 * 60_000, 1_000);
    expect(h.db.getInstance(victim!.id)?.status).toBe('deleted');
    expect(h.provider.find(victim!.id)).toBeUndefined();
    expect(h.db.listAudit({ instanceId: victim!.id }).filter((a) => a.action === 'deleteFailed')).toHaveLength(2);
  });
});
