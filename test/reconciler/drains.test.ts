import { afterEach, describe, expect, it } from 'vitest';
import { EventType } from '../../src/index.js';
import { Harness, configWith } from '../helpers/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const web = (size: number, fields: Record<string, unknown> = {}) => configWith({ default: { web: { size, template: 'web', drainTimeout: '10m', ...fields } } });

async function drainingOne(): Promise<{ harness: Harness; id: string }> {
  const harness = await new Harness({ config: web(3) }).start();
  harness.reportHealthy();
  harness.loader.update(web(2));
  await harness.settle();
  const [draining] = harness.byStatus('draining');
  return { harness, id: draining!.id };
}

function ack(harness: Harness, instanceId: string, tenant = 'default', group = 'web'): void {
  harness.reconciler.enqueue({ type: EventType.DrainAcked, tenant, groupKey: group, instanceId });
}

describe('drains', () => {
  it('stores the drain durably and tells notifyDrain when the instance must be gone', async () => {
    const { harness, id } = await drainingOne();
    h = harness;
    const record = h.db.getInstance(id)!;
    const start = h.clock.nowMs();
    expect(record.drainStartedAt?.getTime()).toBe(start);
    expect(record.drainDeadline?.getTime()).toBe(start + 10 * 60_000);
    expect(record.drainReason).toBe('scaleDown');
    expect(h.drains).toEqual([{ instanceId: id, group: 'default/web', reason: 'scaleDown', unhealthyAt: new Date(start), deleteAt: new Date(start + 10 * 60_000) }]);
  });

  it('deletes a draining instance when the drain is acknowledged', async () => {
    const { harness, id } = await drainingOne();
    h = harness;
    await h.runHealthy(60_000);
    expect(h.db.getInstance(id)?.status).toBe('draining');
    ack(h, id);
    await h.settle();
    expect(h.db.getInstance(id)).toMatchObject({ status: 'deleted', deleteReason: 'drainAcked' });
    expect(h.db.getInstance(id)?.drainAckedAt).not.toBeNull();
    expect(h.provider.find(id)).toBeUndefined();
  });

  it('deletes a draining instance at its deadline when nobody acknowledges, from its own timer', async () => {
    const { harness, id } = await drainingOne();
    h = harness;
    await h.runHealthy(10 * 60_000 - 1_000, 30_000);
    expect(h.db.getInstance(id)?.status).toBe('draining');
    await h.runHealthy(2_000, 1_000);
    expect(h.db.getInstance(id)).toMatchObject({ status: 'deleted', deleteReason: 'drainDeadline' });
  });

  it('deletes a draining instance at once when the provider reports it terminal', async () => {
    const { harness, id } = await drainingOne();
    h = harness;
    h.provider.setStatus(id, 'terminated');
    h.reconciler.enqueue({ type: EventType.CheckInstance, tenant: 'default', groupKey: 'web', instanceId: id });
    await h.settle();
    expect(h.db.getInstance(id)).toMatchObject({ status: 'deleted', deleteReason: 'terminated' });
  });

  it('reports an ack for an instance that is not draining and deletes nothing', async () => {
    h = await new Harness({ config: web(2) }).start();
    h.reportHealthy();
    const [serving] = h.byStatus('running');
    ack(h, serving!.id);
    ack(h, 'i-does-not-exist');
    await h.settle();
    expect(h.db.getInstance(serving!.id)?.status).toBe('running');
    expect(h.provider.stats.delete).toBe(0);
    expect(h.errors.map((e) => e.instanceId)).toEqual(expect.arrayContaining([serving!.id]));
    expect(h.errors.find((e) => e.instanceId === serving!.id)?.message).toMatch(/not draining/);
    expect(h.db.listAudit({ instanceId: serving!.id }).some((a) => a.action === 'ackIgnored')).toBe(true);
  });

  it('never cuts a drain short: later events and scale-ups do not count the draining instance', async () => {
    const { harness, id } = await drainingOne();
    h = harness;
    h.loader.update(web(4));
    await h.settle();
    for (let i = 0; i < 5; i++) h.reconciler.enqueue({ type: EventType.GroupChanged, tenant: 'default', groupKey: 'web' });
    await h.runHealthy(5 * 60_000, 30_000);
    expect(h.db.getInstance(id)?.status).toBe('draining');
    expect(h.byStatus('running')).toHaveLength(4);
  });

  it('drains an unhealthy instance at once and creates its replacement as soon as the surge cap allows', async () => {
    h = await new Harness({ config: web(2, { maxSurge: 0 }) }).start();
    h.reportHealthy();
    const [sick] = h.byStatus('running');
    h.db.updateInstance(sick!.id, { unhealthyAt: h.clock.now() });
    h.reconciler.enqueue({ type: EventType.GroupChanged, tenant: 'default', groupKey: 'web' });
    await h.settle();
    expect(h.db.getInstance(sick!.id)?.status).toBe('draining');
    // maxSurge 0: no room until the drain ends.
    expect(h.live()).toHaveLength(2);
    ack(h, sick!.id);
    await h.settle();
    expect(h.byStatus('running')).toHaveLength(2);
    expect(h.byStatus('running').some((i) => i.replaces === sick!.id)).toBe(true);
  });

  it('keeps a drain and its deadline across a crash and restart', async () => {
    const { harness, id } = await drainingOne();
    h = harness;
    const deadline = h.db.getInstance(id)!.drainDeadline!.getTime();
    await h.runHealthy(2 * 60_000);
    await h.crashAndRestart();
    expect(h.db.getInstance(id)?.drainDeadline?.getTime()).toBe(deadline);
    await h.runHealthy(deadline - h.clock.nowMs() - 1_000, 30_000);
    expect(h.db.getInstance(id)?.status).toBe('draining');
    await h.runHealthy(2_000, 1_000);
    expect(h.db.getInstance(id)?.status).toBe('deleted');
    expect(h.drains.filter((d) => d.instanceId === id)).toHaveLength(1);
  });
});
