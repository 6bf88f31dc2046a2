import { afterEach, describe, expect, it } from 'vitest';
import { EventType } from '../../src/index.js';
import { Harness, configWith } from '../helpers/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function notice(harness: Harness, instanceId: string, at?: Date, group = 'web'): void {
  harness.reconciler.enqueue({ type: EventType.TerminationNotice, tenant: 'default', groupKey: group, instanceId, ...(at ? { timestamp: at } : {}) });
}

describe('termination notices', () => {
  it('creates the replacement at once and drains with a deadline no later than the notice', async () => {
    h = await new Harness({ config: configWith({ default: { web: { size: 3, template: 'web', drainTimeout: '10m' } } }) }).start();
    h.reportHealthy();
    const [doomed] = h.byStatus('running');
    const terminateAt = new Date(h.clock.nowMs() + 2 * 60_000);
    notice(h, doomed!.id, terminateAt);
    await h.settle();
    const record = h.db.getInstance(doomed!.id)!;
    expect(record.status).toBe('draining');
    expect(record.drainReason).toBe('terminationNotice');
    expect(record.drainDeadline?.getTime()).toBe(terminateAt.getTime());
    expect(record.noticeDeadline?.getTime()).toBe(terminateAt.getTime());
    const replacement = h.byStatus('running').find((i) => i.replaces === doomed!.id);
    expect(replacement?.createReason).toBe('terminationNotice');
    expect(h.drains).toEqual([expect.objectContaining({ instanceId: doomed!.id, reason: 'terminationNotice', deleteAt: terminateAt })]);
  });

  it('uses the drain timeout when it ends before the notice does', async () => {
    h = await new Harness({ config: configWith({ default: { web: { size: 2, template: 'web', drainTimeout: '30s' } } }) }).start();
    h.reportHealthy();
    const [doomed] = h.byStatus('running');
    notice(h, doomed!.id, new Date(h.clock.nowMs() + 10 * 60_000));
    await h.settle();
    expect(h.db.getInstance(doomed!.id)?.drainDeadline?.getTime()).toBe(h.clock.nowMs() + 30_000);
  });

  it('assumes the default notice window when the notice names no time', async () => {
    h = await new Harness({ config: configWith({ default: { web: { size: 2, template: 'web', drainTimeout: '10m' } } }, { defaultNoticeWindow: '2m' }) }).start();
    h.reportHealthy();
    const [doomed] = h.byStatus('running');
    notice(h, doomed!.id);
    await h.settle();
    expect(h.db.getInstance(doomed!.id)?.drainDeadline?.getTime()).toBe(h.clock.nowMs() + 2 * 60_000);
  });

  it('does nothing more for repeated notices of the same instance', async () => {
    h = await new Harness({ config: configWith({ default: { web: { size: 3, template: 'web', drainTimeout: '10m' } } }) }).start();
    h.reportHealthy();
    const [doomed] = h.byStatus('running');
    const at = new Date(h.clock.nowMs() + 2 * 60_000);
    notice(h, doomed!.id, at);
    await h.settle();
    const creates = h.provider.stats.create;
    for (let i = 0; i < 5; i++) notice(h, doomed!.id, at);
    await h.settle();
    await h.tick(10_000);
    notice(h, doomed!.id, at);
    await h.settle();
    expect(h.provider.stats.create).toBe(creates);
    expect(h.drains).toHaveLength(1);
    expect(h.db.listAudit({ instanceId: doomed!.id }).filter((a) => a.action === 'notice')).toHaveLength(1);
  });

  it('shortens a drain already in progress to end before the provider terminates the instance', async () => {
    h = await new Harness({ config: configWith({ default: { web: { size: 3, template: 'web', drainTimeout: '1h' } } }) }).start();
    h.reportHealthy();
    h.loader.update(configWith({ default: { web: { size: 2, template: 'web', drainTimeout: '1h' } } }));
    await h.settle();
    const [draining] = h.byStatus('draining');
    const at = new Date(h.clock.nowMs() + 60_000);
    notice(h, draining!.id, at);
    await h.settle();
    expect(h.db.getInstance(draining!.id)?.drainDeadline?.getTime()).toBe(at.getTime());
    await h.runHealthy(61_000, 10_000);
    expect(h.db.getInstance(draining!.id)?.status).toBe('deleted');
  });

  it('sends the replacement create ahead of bulk creates already waiting for the provider', async () => {
    // 50 creates of another group wait behind a 10 calls/s provider limit.
    h = new Harness({
      config: configWith(
        { default: { web: { size: 2, template: 'web', drainTimeout: '10m' }, batch: { size: 0, template: 'worker' } } },
        {},
        { provider: { kind: 'sim', maxCallsPerSecond: 10 } },
      ),
    });
    await h.reconciler.start();
    await h.run(2_000, 100);
    h.reportHealthy();
    h.loader.update(
      configWith(
        { default: { web: { size: 2, template: 'web', drainTimeout: '10m' }, batch: { size: 50, template: 'worker' } } },
        {},
        { provider: { kind: 'sim', maxCallsPerSecond: 10 } },
      ),
    );
    await h.clock.advance(300);
    const [doomed] = h.byStatus('running');
    const creates: string[] = [];
    h.provider.onCallStart((c) => {
      if (c.op === 'create') creates.push(c.idempotencyKey ?? '');
    });
    notice(h, doomed!.id, new Date(h.clock.nowMs() + 120_000));
    await h.clock.advance(300);
    const replacement = h.live().find((i) => i.replaces === doomed!.id);
    expect(replacement).toBeDefined();
    expect(creates.slice(0, 2)).toContain(replacement!.id);
    expect(h.byStatus('creating', 'default', 'batch').length).toBeGreaterThan(40);
  });
});
