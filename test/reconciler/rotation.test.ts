import { afterEach, describe, expect, it } from 'vitest';
import { EventType } from '../../src/index.js';
import { Harness, configWith, BASE_CONFIG } from '../helpers/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function ackAll(harness: Harness): void {
  for (const i of harness.byStatus('draining')) harness.reconciler.enqueue({ type: EventType.DrainAcked, tenant: 'default', groupKey: 'web', instanceId: i.id });
}

describe('expiry', () => {
  const config = (extra: Record<string, unknown> = {}) =>
    configWith(
      { default: { web: { size: 3, template: 'web', drainTimeout: '10m', maxSurge: 1, ...extra } } },
      // Reports every 20 min are enough (stale after an hour), so days can be run in 10-min steps.
      { healthCheckInterval: '20m', expiry: { eligibleAge: '1d', forcedAge: '2d' } },
    );

  it('rotates the oldest eligible instance, replacement first, one at a time', async () => {
    h = await new Harness({ config: config() }).start();
    h.reportHealthy();
    const originals = h.byStatus('running').map((i) => i.id);
    await h.runHealthy(DAY - 60_000, 10 * 60_000);
    expect(h.provider.stats.create).toBe(3);

    // Past eligibleAge: a replacement is created, but nothing drains until it reports healthy.
    await h.run(2 * 60_000, 60_000);
    const replacement = h.live().find((i) => i.createReason === 'expiry');
    expect(replacement?.replaces).toBe(originals[0]);
    expect(h.byStatus('draining')).toHaveLength(0);
    expect(h.live()).toHaveLength(4);

    h.db.recordHealth(replacement!.id, h.clock.now());
    await h.settle();
    expect(h.byStatus('draining').map((i) => i.id)).toEqual([originals[0]]);
    expect(h.db.getInstance(originals[0]!)?.drainReason).toBe('expiry');
    // Only one rotation at a time: no second replacement while the first drains.
    expect(h.live().filter((i) => i.createReason === 'expiry')).toHaveLength(1);

    ackAll(h);
    await h.settle();
    await h.runHealthy(60_000, 10_000);
    // The next rotation starts once the group is quiet again.
    expect(h.live().filter((i) => i.createReason === 'expiry')).toHaveLength(2);
    await h.runHealthy(60_000, 10_000);
    ackAll(h);
    await h.runHealthy(60_000, 10_000);
    ackAll(h);
    await h.runHealthy(60_000, 10_000);
    const serving = h.byStatus('running').map((i) => i.id);
    expect(serving).toHaveLength(3);
    for (const id of originals) expect(serving).not.toContain(id);
  });

  it('does not start an eligible rotation while another instance drains', async () => {
    h = await new Harness({ config: config({ drainTimeout: '6h', maxSurge: 2 }) }).start();
    h.reportHealthy();
    // Scale down by one just before expiry: a long drain is in progress when instances turn eligible.
    await h.runHealthy(DAY - HOUR, 10 * 60_000);
    h.loader.update(
      configWith({ default: { web: { size: 2, template: 'web', drainTimeout: '6h', maxSurge: 2 } } }, { healthCheckInterval: '20m', expiry: { eligibleAge: '1d', forcedAge: '2d' } }),
    );
    await h.settle();
    expect(h.byStatus('draining')).toHaveLength(1);
    await h.runHealthy(2 * HOUR, 10 * 60_000);
    expect(h.live().filter((i) => i.createReason === 'expiry')).toHaveLength(0);
    const plan = h.reconciler.plan('default', 'web');
    expect(plan.blocked.map((b) => b.code)).toContain('DrainInProgress');
    await h.runHealthy(4 * HOUR, 10 * 60_000);
    expect(h.live().filter((i) => i.createReason === 'expiry').length).toBeGreaterThan(0);
  });

  it('rotates past forcedAge even while others drain, so no instance outlives forcedAge + drainTimeout', async () => {
    h = await new Harness({ config: config({ drainTimeout: '10m' }) }).start();
    h.reportHealthy();
    const created = new Map(h.byStatus('running').map((i) => [i.id, i.createdAt.getTime()]));
    // Replacements never report healthy, so eligible rotation never completes; forced expiry must still act.
    await h.runHealthy(2 * DAY + 20 * 60_000, 10 * 60_000, (i) => !created.has(i.id));
    for (const [id, at] of created) {
      const record = h.db.getInstance(id)!;
      expect(record.status).toBe('deleted');
      expect(record.deletedAt!.getTime() - at).toBeLessThanOrEqual(2 * DAY + 10 * 60_000);
    }
    expect(h.db.listAudit().filter((a) => a.action === 'drain' && a.reason === 'expiryForced').length).toBe(3);
  });

  it('keeps expiry across a restart: its timers are durable', async () => {
    h = await new Harness({ config: config() }).start();
    h.reportHealthy();
    await h.runHealthy(12 * HOUR, 10 * 60_000);
    await h.crashAndRestart();
    await h.runHealthy(12 * HOUR + 60_000, 10 * 60_000);
    expect(h.live().filter((i) => i.createReason === 'expiry')).toHaveLength(1);
  });

  it('wakes only when something is due, not in a loop', async () => {
    let runs = 0;
    h = new Harness({
      config: configWith(
        { default: { web: { size: 3, template: 'web' } } },
        { healthCheckInterval: '1d', resyncInterval: '0s', expiry: { eligibleAge: '1d', forcedAge: '2d' } },
      ),
      reconciler: { observer: { reconciled: () => runs++ } },
    });
    await h.start();
    h.reportHealthy();
    await h.settle();
    runs = 0;
    await h.clock.advance(DAY - 60_000);
    await h.settle();
    expect(runs).toBeLessThanOrEqual(1);
    await h.clock.advance(2 * 60_000);
    await h.settle();
    expect(h.live().filter((i) => i.createReason === 'expiry')).toHaveLength(1);
  });
});

describe('drift', () => {
  const withImage = (image: string, maxSurge: number) => ({
    ...configWith({ default: { web: { size: 4, template: 'web', drainTimeout: '10m', maxSurge } } }),
    templates: { ...BASE_CONFIG.templates, web: { image } },
  });

  it('rotates instances of a changed template oldest first, at most maxSurge at a time, replacement first', async () => {
    h = await new Harness({ config: withImage('web:1', 2) }).start();
    // Give the instances distinct ages.
    h.loader.update(withImage('web:1', 2));
    h.reportHealthy();
    const oldHash = h.byStatus('running')[0]!.templateHash;
    h.loader.update(withImage('web:2', 2));
    await h.settle();
    const replacements = h.live().filter((i) => i.createReason === 'drift');
    expect(replacements).toHaveLength(2);
    expect(new Set(replacements.map((r) => r.templateHash)).has(oldHash)).toBe(false);
    expect(h.byStatus('draining')).toHaveLength(0); // replacement first
    expect(h.live().length).toBeLessThanOrEqual(6);

    let maxLive = 0;
    let maxRotating = 0;
    for (let step = 0; step < 20; step++) {
      h.reportHealthy();
      await h.settle();
      ackAll(h);
      await h.tick(30_000);
      maxLive = Math.max(maxLive, h.live().length);
      maxRotating = Math.max(maxRotating, h.live().filter((i) => i.templateHash !== oldHash && i.healthAt === null).length);
    }
    expect(maxLive).toBeLessThanOrEqual(6);
    expect(maxRotating).toBeLessThanOrEqual(2);
    const serving = h.byStatus('running');
    expect(serving).toHaveLength(4);
    expect(serving.every((i) => i.templateHash !== oldHash)).toBe(true);
    const drained = h.db.listAudit().filter((a) => a.action === 'drain').map((a) => a.reason);
    expect(drained).toEqual(['drift', 'drift', 'drift', 'drift']);
  });
});
