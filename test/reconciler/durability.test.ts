import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { EventType, TAG, openLocalDb } from '../../src/index.js';
import { Harness, configWith } from '../helpers/harness.js';
import { setRow } from '../helpers/store-fixtures.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const web = (size: number, fields: Record<string, unknown> = {}) => configWith({ default: { web: { size, template: 'web', drainTimeout: '5m', ...fields } } });

/** Checks that the cloud and the store agree: no leak, no duplicate, no unknown instance. */
function expectConsistent(harness: Harness): void {
  const cloud = harness.provider.instances();
  const keys = cloud.map((i) => i.idempotencyKey);
  expect(new Set(keys).size).toBe(keys.length);
  for (const instance of cloud) {
    const record = harness.db.getInstance(instance.tags[TAG.instanceId] ?? '');
    expect(record, `cloud instance ${instance.providerId} is known to the store`).not.toBeNull();
    expect(record!.status).not.toBe('deleted');
  }
}

describe('durability', () => {
  it('records every create before calling the provider, with the instance id as tag and idempotency key', async () => {
    h = new Harness({ config: web(5) });
    const seen: Array<{ key: string; status: string | undefined; tag: string | undefined }> = [];
    h.provider.onCallStart((c) => {
      if (c.op !== 'create') return;
      seen.push({ key: c.idempotencyKey ?? '', status: h!.db.getInstance(c.idempotencyKey ?? '')?.status, tag: undefined });
    });
    await h.start();
    expect(seen).toHaveLength(5);
    for (const s of seen) expect(s.status).toBe('creating');
    for (const instance of h.provider.instances()) expect(instance.tags[TAG.instanceId]).toBe(instance.idempotencyKey);
  });

  it('adopts creates that were in flight when the process died, instead of creating again', async () => {
    h = new Harness({ config: web(4), sim: { createLatencyMs: 5_000 } });
    await h.reconciler.start();
    await h.clock.advance(1_000); // creates are at the provider, answers not yet back
    expect(h.provider.instances()).toHaveLength(4);
    await h.crash();
    await h.clock.advance(10_000);
    await h.restart();
    await h.run(30_000, 1_000);
    expect(h.provider.stats.create).toBe(4);
    expect(h.byStatus('running')).toHaveLength(4);
    expect(h.db.listAudit().filter((a) => a.action === 'adopt')).toHaveLength(4);
    expectConsistent(h);
  });

  it('sends recorded creates that never reached the provider after a restart, with the same ids', async () => {
    h = new Harness({ config: web(3, {}), reconciler: { createRateLimitMs: 60_000 } });
    await h.reconciler.start();
    await h.clock.advance(1);
    expect(h.provider.stats.create).toBe(1);
    const waiting = h.byStatus('creating').map((i) => i.id);
    expect(waiting).toHaveLength(2);
    await h.crash();
    await h.restart();
    await h.run(3 * 60_000, 5_000);
    expect(h.provider.instances().map((i) => i.idempotencyKey)).toEqual(expect.arrayContaining(waiting));
    expect(h.provider.instances()).toHaveLength(3);
    expectConsistent(h);
  });

  it('marks instances that vanished while it was down, and replaces them', async () => {
    h = await new Harness({ config: web(3) }).start();
    h.reportHealthy();
    await h.crash();
    const [gone] = h.byStatus('running');
    h.provider.vanish(gone!.id);
    await h.restart();
    expect(h.db.getInstance(gone!.id)).toMatchObject({ status: 'deleted', deleteReason: 'vanished' });
    expect(h.byStatus('running')).toHaveLength(3);
    expectConsistent(h);
  });

  it('deletes a leaked instance: one the provider still has although the store deleted it', async () => {
    h = await new Harness({ config: web(2) }).start();
    h.reportHealthy();
    const [leaked] = h.byStatus('running');
    // The store thinks it is gone (for example, a delete whose answer was lost).
    setRow(h.db, leaked!.id, { status: 'deleted', deletedAt: h.clock.now(), deleteReason: 'drainAcked' });
    h.reconciler.enqueue({ type: EventType.InitialReconcile });
    await h.settle();
    expect(h.provider.find(leaked!.id)).toBeUndefined();
    expect(h.db.listAudit({ instanceId: leaked!.id }).map((a) => a.action)).toContain('leak');
    expectConsistent(h);
  });

  it('rebuilds from provider tags when its database is lost, adopting instances and resuming drains', async () => {
    h = await new Harness({ config: web(3, { drainTimeout: '30m' }) }).start();
    h.reportHealthy();
    h.loader.update(web(2, { drainTimeout: '30m' }));
    await h.settle();
    const [draining] = h.byStatus('draining');
    const deadline = h.db.getInstance(draining!.id)!.drainDeadline!;
    await h.crash();
    h.db.close();
    rmSync(h.dbPath);
    rmSync(`${h.dbPath}-wal`, { force: true });
    rmSync(`${h.dbPath}-shm`, { force: true });
    h.db = openLocalDb(h.dbPath);
    await h.restart();
    expect(h.provider.stats.create).toBe(3);
    const adopted = h.db.getInstance(draining!.id);
    expect(adopted?.status).toBe('draining');
    expect(adopted?.drainDeadline?.getTime()).toBe(deadline.getTime());
    await h.runHealthy(deadline.getTime() - h.clock.nowMs() + 1_000, 60_000);
    expect(h.db.getInstance(draining!.id)?.status).toBe('deleted');
    expect(h.byStatus('running')).toHaveLength(2);
  });

  it('converges without leaks or duplicates after crashes at many points of a scale-up and drain', async () => {
    for (let crashAt = 0; crashAt < 3_000; crashAt += 250) {
      const harness = new Harness({ config: web(6, { maxSurge: 2 }), sim: { createLatencyMs: 700, deleteLatencyMs: 400 } });
      try {
        await harness.reconciler.start();
        await harness.clock.advance(crashAt);
        await harness.crash();
        await harness.restart();
        await harness.run(20_000, 100);
        harness.reportHealthy();
        harness.loader.update(web(3, { maxSurge: 2, drainTimeout: '0s' }));
        await harness.clock.advance(crashAt / 3);
        await harness.crash();
        await harness.restart();
        await harness.run(20_000, 100);
        const cloud = harness.cloud();
        expect(cloud.length, `crash at ${crashAt} ms`).toBe(3);
        expect(harness.byStatus('running')).toHaveLength(3);
        expectConsistent(harness);
      } finally {
        await harness.close();
      }
    }
  });
});
