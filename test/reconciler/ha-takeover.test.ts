/**
 * A replica that becomes leader after another one led: its store may be stale (rows from its own
 * earlier term). On the win, drains recorded in the provider's tags win over its rows, and every
 * agent gets one health threshold to reconnect before its silence counts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { EventType, TAG } from '../../src/index.js';
import { Harness, configWith } from '../helpers/harness.js';
import { setRow } from '../helpers/store-fixtures.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const MIN = 60_000;

/** A harness at size 3, healthy, that then stops leading (another replica leads meanwhile). */
async function follower(): Promise<Harness> {
  const harness = await new Harness({ config: configWith({ default: { web: { size: 3, template: 'web', drainTimeout: '10m' } } }) }).start();
  harness.reportHealthy();
  await harness.tick(1_000);
  harness.leader = false;
  return harness;
}

async function win(harness: Harness): Promise<void> {
  harness.leader = true;
  harness.reconciler.enqueue({ type: EventType.InitialReconcile, cause: 'leader' });
  await harness.reconciler.quiescent();
  await harness.settle();
}

function providerIdOf(harness: Harness, id: string): string {
  return harness.db.getInstance(id)!.providerId!;
}

describe('taking over from another leader', () => {
  it('resumes a drain another leader began, with its original deadline, and deletes it at that deadline', async () => {
    h = await follower();
    const [victim] = h.byStatus('running');
    const startedAt = new Date(h.clock.nowMs() - 2 * MIN);
    const deadline = new Date(h.clock.nowMs() + 3 * MIN);
    await h.provider.setTags(providerIdOf(h, victim!.id), { [TAG.drainStartedAt]: startedAt.toISOString(), [TAG.drainDeadline]: deadline.toISOString(), [TAG.drainReason]: 'scaleDown' });
    await win(h);
    const row = h.db.getInstance(victim!.id)!;
    expect(row.status).toBe('draining');
    expect(row.drainDeadline?.toISOString()).toBe(deadline.toISOString());
    expect(row.drainStartedAt?.toISOString()).toBe(startedAt.toISOString());
    expect(h.db.listAudit({ instanceId: victim!.id }).at(-1)).toMatchObject({ action: 'drain', reason: 'scaleDown' });
    await h.runHealthy(3 * MIN - 1_000, 10_000);
    expect(h.db.getInstance(victim!.id)?.status).toBe('draining');
    await h.runHealthy(2_000, 1_000);
    expect(h.db.getInstance(victim!.id)?.status).toBe('deleted');
  });

  it('reads a drain reason in the tags it does not know as a scale-down (tags are outside input)', async () => {
    h = await follower();
    const [victim] = h.byStatus('running');
    const deadline = new Date(h.clock.nowMs() + 3 * MIN);
    await h.provider.setTags(providerIdOf(h, victim!.id), { [TAG.drainStartedAt]: h.clock.now().toISOString(), [TAG.drainDeadline]: deadline.toISOString(), [TAG.drainReason]: 'rm -rf' });
    await win(h);
    expect(h.db.getInstance(victim!.id)).toMatchObject({ status: 'draining', drainReason: 'scaleDown', drainDeadline: deadline });
  });

  it('takes an extended deadline from the tags, returns a drain cancelled meanwhile to service, and keeps an untagged drain', async () => {
    h = await new Harness({ config: configWith({ default: { web: { size: 3, template: 'web', drainTimeout: '10m', maxSurge: 0 } } }) }).start();
    h.reportHealthy();
    // This replica drains two instances (scale-down to 1), then loses leadership.
    h.loader.update(configWith({ default: { web: { size: 1, template: 'web', drainTimeout: '10m', maxSurge: 0 } } }));
    await h.tick(1_000);
    const [extended, cancelled] = h.byStatus('draining');
    expect(cancelled).toBeDefined();
    h.leader = false;
    // Meanwhile the other leader extended one drain and cancelled the other (and scaled back to 2).
    const later = new Date(h.clock.nowMs() + 30 * MIN);
    await h.provider.setTags(providerIdOf(h, extended!.id), { [TAG.drainDeadline]: later.toISOString() });
    await h.provider.setTags(providerIdOf(h, cancelled!.id), { [TAG.drainStartedAt]: '', [TAG.drainDeadline]: '', [TAG.drainReason]: '' });
    h.loader.update(configWith({ default: { web: { size: 2, template: 'web', drainTimeout: '10m', maxSurge: 0 } } }));
    await win(h);
    expect(h.db.getInstance(extended!.id)).toMatchObject({ status: 'draining', drainDeadline: later });
    expect(h.db.getInstance(cancelled!.id)).toMatchObject({ status: 'running', drainDeadline: null, drainReason: null });
    expect(h.byStatus('running')).toHaveLength(2);
    // A drain without tags (this replica's own, whose tag write was lost) goes on.
    const [own] = h.byStatus('running').filter((i) => i.id !== cancelled!.id);
    setRow(h.db, own!.id, { status: 'draining', drainStartedAt: h.clock.now(), drainDeadline: new Date(h.clock.nowMs() + 5 * MIN), drainReason: 'scaleDown' });
    h.leader = false;
    await win(h);
    expect(h.db.getInstance(own!.id)?.status).toBe('draining');
  });

  it('keeps a drain begun after the cancel its tags record (the new drain\'s own tag write not landed)', async () => {
    h = await new Harness({ config: configWith({ default: { web: { size: 2, template: 'web', drainTimeout: '10m' } } }) }).start();
    h.reportHealthy();
    const [inst] = h.byStatus('running');
    // An operator's drain was cancelled a minute ago (the tags say so); since then the instance
    // was drained again, for health, and that drain's tag write has not reached the provider.
    const cancelledAt = new Date(h.clock.nowMs() - MIN);
    await h.provider.setTags(providerIdOf(h, inst!.id), { [TAG.drainStartedAt]: '', [TAG.drainDeadline]: '', [TAG.drainReason]: '', [TAG.drainCancelledAt]: cancelledAt.toISOString() });
    setRow(h.db, inst!.id, { status: 'draining', drainStartedAt: h.clock.now(), drainDeadline: new Date(h.clock.nowMs() + 10 * MIN), drainReason: 'unhealthy' });
    h.leader = false;
    await win(h);
    expect(h.db.getInstance(inst!.id)).toMatchObject({ status: 'draining', drainReason: 'unhealthy' });
    expect(h.db.listAudit({ instanceId: inst!.id }).some((a) => a.action === 'drainCancelled')).toBe(false);
  });

  it('a periodic resync within a term leaves known rows to the store (tags lag behind it)', async () => {
    h = await new Harness({ config: configWith({ default: { web: { size: 2, template: 'web' } } }, { resyncInterval: '5m' }) }).start();
    h.reportHealthy();
    const [inst] = h.byStatus('running');
    const deadline = new Date(h.clock.nowMs() + 3 * MIN);
    await h.provider.setTags(providerIdOf(h, inst!.id), { [TAG.drainStartedAt]: h.clock.now().toISOString(), [TAG.drainDeadline]: deadline.toISOString(), [TAG.drainReason]: 'drift' });
    await h.runHealthy(5 * MIN + 1_000, 30_000);
    expect(h.db.getInstance(inst!.id)?.status).toBe('running');
  });

  it('gives every agent one health threshold from the win before judging its silence', async () => {
    h = await follower();
    // Ten minutes as a follower: the agents reported to the other leader, not here.
    await h.tick(10 * MIN);
    const statusCalls = h.provider.stats.status;
    await win(h);
    // Threshold = 3 × 60 s. Nothing is checked or drained before it has passed.
    await h.run(3 * MIN - 10_000, 10_000);
    expect(h.provider.stats.status).toBe(statusCalls);
    expect(h.drains).toHaveLength(0);
    // The agents reconnect and report in time: nothing happens to them at all.
    await h.runHealthy(10 * MIN, 30_000);
    expect(h.drains).toHaveLength(0);
    expect(h.byStatus('running')).toHaveLength(3);
  });

  it('judges agents that stay silent after the threshold from the win', async () => {
    h = await follower();
    await h.tick(10 * MIN);
    const statusCalls = h.provider.stats.status;
    await win(h);
    await h.run(3 * MIN + 30_000, 10_000);
    expect(h.provider.stats.status).toBeGreaterThan(statusCalls);
  });
});
