import { afterEach, describe, expect, it } from 'vitest';
import { EventType, TERMINAL_STATUSES } from '../../src/index.js';
import { Harness, configWith } from '../helpers/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const web = (fields: Record<string, unknown> = {}) => configWith({ default: { web: { size: 3, template: 'web', drainTimeout: '5m', ...fields } } });

async function healthyGroup(fields: Record<string, unknown> = {}): Promise<Harness> {
  const harness = await new Harness({ config: web(fields) }).start();
  harness.reportHealthy();
  return harness;
}

function check(harness: Harness, instanceId: string, extra: Record<string, unknown> = {}): void {
  harness.reconciler.enqueue({ type: EventType.CheckInstance, tenant: 'default', groupKey: 'web', instanceId, ...extra });
}

describe('unhealthy instances', () => {
  it.each([...TERMINAL_STATUSES])('replaces an instance the provider reports %s, without a drain', async (status) => {
    h = await healthyGroup();
    const [victim] = h.byStatus('running');
    h.provider.setStatus(victim!.id, status);
    check(h, victim!.id);
    await h.settle();
    expect(h.db.getInstance(victim!.id)).toMatchObject({ status: 'deleted', deleteReason: 'terminated' });
    expect(h.drains).toHaveLength(0);
    const running = h.byStatus('running');
    expect(running).toHaveLength(3);
    expect(running.find((i) => i.replaces === victim!.id)?.createReason).toBe('terminated');
  });

  it('replaces an instance the provider no longer has, without a drain', async () => {
    h = await healthyGroup();
    const [victim] = h.byStatus('running');
    h.provider.vanish(victim!.id);
    check(h, victim!.id);
    await h.settle();
    expect(h.db.getInstance(victim!.id)).toMatchObject({ status: 'deleted', deleteReason: 'vanished' });
    expect(h.drains).toHaveLength(0);
    expect(h.byStatus('running')).toHaveLength(3);
    expect(h.provider.stats.delete).toBe(0);
  });

  it('leaves a running instance alone when the check finds it running and its health is current', async () => {
    h = await healthyGroup();
    const [inst] = h.byStatus('running');
    check(h, inst!.id);
    await h.settle();
    expect(h.db.getInstance(inst!.id)?.status).toBe('running');
    expect(h.provider.stats.status).toBe(1);
  });

  it('gives up on a status call after 5 s, reports the error and retries later', async () => {
    h = await healthyGroup();
    const [inst] = h.byStatus('running');
    h.provider.slowNext('status', 1, 60_000);
    h.provider.setStatus(inst!.id, 'stopped');
    check(h, inst!.id);
    await h.clock.advance(5_000);
    await h.settle();
    expect(h.errors.some((e) => e.instanceId === inst!.id && /timed out after 5000 ms/.test(e.message))).toBe(true);
    expect(h.db.getInstance(inst!.id)?.status).toBe('running');
    // The retry (after about 5 s of backoff) asks again and acts.
    await h.run(30_000, 1_000);
    expect(h.db.getInstance(inst!.id)?.status).toBe('deleted');
  });

  it('drains and replaces a running instance that misses health reports, from its own timer', async () => {
    h = await healthyGroup();
    const [silent] = h.byStatus('running');
    // No events are sent: the reconciler's durable timer notices the silence.
    await h.runHealthy(2 * 60_000 + 50_000, 10_000, [silent!.id]);
    expect(h.db.getInstance(silent!.id)?.status).toBe('running');
    await h.runHealthy(30_000, 10_000, [silent!.id]);
    const record = h.db.getInstance(silent!.id);
    expect(record?.status).toBe('draining');
    expect(record?.drainReason).toBe('unhealthy');
    expect(record?.unhealthyAt).not.toBeNull();
    expect(h.drains).toEqual([expect.objectContaining({ instanceId: silent!.id, reason: 'unhealthy', group: 'default/web' })]);
    expect(h.byStatus('running')).toHaveLength(3);
    // The provider was asked before judging.
    expect(h.provider.stats.status).toBeGreaterThanOrEqual(1);
  });

  it('replaces an instance that never reports health within the startup timeout', async () => {
    h = await new Harness({ config: web({ startupTimeout: '2m' }) }).start();
    const ids = h.byStatus('running').map((i) => i.id);
    const [stuck, ...rest] = ids;
    for (const id of rest) h.db.recordHealth(id, h.clock.now());
    await h.runHealthy(2 * 60_000 + 1_000, 10_000, [stuck!]);
    expect(h.db.getInstance(stuck!)).toMatchObject({ status: 'deleted', deleteReason: 'startupTimeout' });
    expect(h.live().filter((i) => i.status !== 'deleted')).toHaveLength(3);
  });

  it('re-polls a disconnected instance at about 3, 6, 12, 24 and 30 s, at most 8 times', async () => {
    h = await healthyGroup();
    const [inst] = h.byStatus('running');
    const polls: number[] = [];
    h.provider.onCallStart((c) => {
      if (c.op === 'status') polls.push(c.at);
    });
    const t0 = h.clock.nowMs();
    check(h, inst!.id, { cause: 'disconnect', timestamp: h.clock.now() });
    // Others keep reporting; this one stays silent but its process still runs.
    await h.runHealthy(170_000, 1_000, [inst!.id]);
    expect(polls.length).toBe(9); // the first check and 8 re-polls
    const gaps = polls.map((t, i) => (i === 0 ? t - t0 : t - polls[i - 1]!));
    expect(gaps.slice(1)).toEqual([3_000, 6_000, 12_000, 24_000, 30_000, 30_000, 30_000, 30_000]);
    // Polling is over: only the health-overdue check (at 3 min of silence) may ask again.
    await h.runHealthy(5_000, 1_000, [inst!.id]);
    expect(polls.length).toBe(9);
  });

  it('stops re-polling as soon as a health report newer than the disconnect arrives', async () => {
    h = await healthyGroup();
    const [inst] = h.byStatus('running');
    let polls = 0;
    h.provider.onCallStart((c) => {
      if (c.op === 'status') polls++;
    });
    check(h, inst!.id, { cause: 'disconnect', timestamp: h.clock.now() });
    await h.runHealthy(10_000, 1_000, [inst!.id]); // polls at 0, 3 s, 9 s
    expect(polls).toBe(3);
    h.db.recordHealth(inst!.id, h.clock.now()); // the agent is back
    await h.runHealthy(120_000, 1_000);
    expect(polls).toBe(3);
  });

  it('skips a preventDuplicate event seen within two health intervals', async () => {
    h = await healthyGroup();
    const [inst] = h.byStatus('running');
    check(h, inst!.id, { preventDuplicate: true });
    await h.settle();
    check(h, inst!.id, { preventDuplicate: true });
    await h.settle();
    expect(h.provider.stats.status).toBe(1);
    await h.runHealthy(119_000, 10_000);
    check(h, inst!.id, { preventDuplicate: true });
    await h.settle();
    expect(h.provider.stats.status).toBe(1);
    await h.runHealthy(2_000, 1_000);
    check(h, inst!.id, { preventDuplicate: true });
    await h.settle();
    expect(h.provider.stats.status).toBe(2);
    // Without the flag it is never skipped.
    check(h, inst!.id);
    await h.settle();
    expect(h.provider.stats.status).toBe(3);
  });

  it('does not replace the whole fleet after a restart, giving agents one threshold to report', async () => {
    h = await healthyGroup();
    // The server is down for an hour: no reports are recorded meanwhile.
    await h.crash();
    await h.clock.advance(60 * 60_000);
    await h.restart();
    await h.runHealthy(5 * 60_000, 10_000);
    expect(h.drains).toHaveLength(0);
    expect(h.provider.stats.create).toBe(3);
  });
});
