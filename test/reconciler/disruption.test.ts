import { afterEach, describe, expect, it } from 'vitest';
import { ConflictError, EventType } from '../../src/index.js';
import { BASE_CONFIG, Harness, configWith } from '../helpers/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const MIN = 60_000;
const HOUR = 60 * MIN;

function group(fields: Record<string, unknown>, shard: Record<string, unknown> = {}, image = 'web:1'): Record<string, unknown> {
  return {
    ...configWith({ default: { web: { template: 'web', drainTimeout: '10m', ...fields } } }, { healthCheckInterval: '20m', ...shard }),
    templates: { ...BASE_CONFIG.templates, web: { image } },
  };
}

/**
 * A group of 2 (cancel hold 2h) with an operator's drain requested on its first instance and the
 * replacement up and reporting healthy: the next reconcile starts the drain.
 */
async function operatorDrainWithReplacementUp(): Promise<{ harness: Harness; a: { id: string } }> {
  const harness = await new Harness({ config: group({ size: 2, disruption: { cancelHold: '2h' } }) }).start();
  harness.reportHealthy();
  const [a] = harness.byStatus('running');
  await harness.reconciler.operator.requestDrain(a!.id, { force: false, actor: 'operator:alice' });
  await harness.settle();
  harness.reportHealthy();
  return { harness, a: a! };
}

function ackAll(harness: Harness): void {
  for (const i of harness.byStatus('draining')) harness.reconciler.enqueue({ type: EventType.DrainAcked, tenant: 'default', groupKey: 'web', instanceId: i.id });
}

/** Counts instances disrupted for voluntary reasons: draining for them, or waiting for a replacement. */
function disrupted(harness: Harness): number {
  const live = harness.live();
  const waiting = live.filter((i) => i.status === 'running' && live.some((r) => r.replaces === i.id && r.status !== 'deleting' && r.createReason !== 'scaleUp' && r.healthAt === null));
  return harness.byStatus('draining').length + waiting.length;
}

describe('disruption budgets', () => {
  it('never lets drift rotate more instances at once than a percentage budget allows', async () => {
    const budgets = [{ max: '20%' }];
    h = await new Harness({ config: group({ size: 10, maxSurge: 5, disruption: { budgets } }) }).start();
    h.reportHealthy();
    h.loader.update(group({ size: 10, maxSurge: 5, disruption: { budgets } }, {}, 'web:2'));
    let most = 0;
    for (let step = 0; step < 40; step++) {
      await h.settle();
      most = Math.max(most, disrupted(h));
      h.reportHealthy();
      await h.settle();
      most = Math.max(most, disrupted(h));
      ackAll(h);
      await h.tick(MIN);
    }
    expect(most).toBe(2); // ceil(20% of 10)
    expect(h.byStatus('running').every((i) => i.templateHash === h!.byStatus('running')[0]!.templateHash)).toBe(true);
    expect(h.byStatus('running')).toHaveLength(10);
  });

  it('limits scale-down drains by a count budget and says which budget blocks', async () => {
    h = await new Harness({ config: group({ size: 6, disruption: { budgets: [{ max: 1, reasons: ['scaleDown'] }] } }) }).start();
    h.reportHealthy();
    h.loader.update(group({ size: 3, disruption: { budgets: [{ max: 1, reasons: ['scaleDown'] }] } }));
    await h.settle();
    expect(h.byStatus('draining')).toHaveLength(1);
    const blocked = h.reconciler.plan('default', 'web').blocked.find((b) => b.code === 'BudgetExhausted');
    expect(blocked?.message).toMatch(/disruption\.budgets\[0\] \(max 1, scaleDown\) allows no more disruption now \(1 disrupted\)/);
    for (let k = 0; k < 2; k++) {
      ackAll(h);
      await h.settle();
      expect(h.byStatus('draining')).toHaveLength(1);
    }
    ackAll(h);
    await h.settle();
    expect(h.byStatus('running')).toHaveLength(3);
    expect(h.byStatus('draining')).toHaveLength(0);
  });

  it('holds rotations during a zero-budget window in a time zone, across midnight and daylight saving', async () => {
    // No expiry rotations from 22:00 to 06:00 Berlin time. Eligible at 1 day.
    const disruption = { budgets: [{ reasons: ['expiry', 'drift'], max: 0, schedule: '0 22 * * *', duration: '8h', timezone: 'Europe/Berlin' }] };
    // Start 2026-03-28 10:00 UTC; instances become eligible 2026-03-29 10:00 UTC... too late. Make them eligible at night:
    h = await new Harness({
      start: new Date('2026-03-28T03:00:00Z'), // 04:00 Berlin (UTC+1): inside last night's window
      config: group({ size: 2, disruption }, { expiry: { eligibleAge: '20h', forcedAge: '10d' } }),
    }).start();
    h.reportHealthy();
    // Eligible at 2026-03-28T23:00Z = 00:00 Berlin on the 29th: inside the window (22:00-06:00).
    await h.runHealthy(20 * HOUR + 10 * MIN, 10 * MIN, () => false);
    expect(h.live().filter((i) => i.createReason === 'expiry')).toHaveLength(0);
    const blocked = h.reconciler.plan('default', 'web').blocked.find((b) => b.code === 'BudgetExhausted');
    // The window opened at 22:00 local (CET) = 21:00Z and lasts 8 elapsed hours: the clocks go
    // forward at 02:00 on 2026-03-29, so it closes at 05:00Z = 07:00 local summer time.
    expect(blocked?.until?.toISOString()).toBe('2026-03-29T05:00:00.000Z');
    await h.runHealthy(5 * HOUR, 10 * MIN, (i) => i.createReason === 'expiry'); // to 04:10Z, still inside
    expect(h.live().filter((i) => i.createReason === 'expiry')).toHaveLength(0);
    await h.runHealthy(HOUR, 10 * MIN, (i) => i.createReason === 'expiry'); // past 05:00Z
    expect(h.live().filter((i) => i.createReason === 'expiry')).toHaveLength(1);
    // The window's end is a wake-up of its own: the rotation starts at 05:00Z sharp.
    const firstRotation = h.db.listAudit({ group: 'web' }).find((a) => a.action === 'create' && a.reason === 'expiry');
    expect(firstRotation?.at.toISOString()).toBe('2026-03-29T05:00:00.000Z');
  });

  it('lets forced expiry through a spent budget, and says so in the audit', async () => {
    const disruption = { budgets: [{ reasons: ['expiry'], max: 0 }] };
    h = await new Harness({ config: group({ size: 1, disruption }, { expiry: { eligibleAge: '1h', forcedAge: '2h' } }) }).start();
    h.reportHealthy();
    const [old] = h.byStatus('running');
    await h.runHealthy(2 * HOUR + MIN, 10 * MIN);
    const drain = h.db.listAudit({ instanceId: old!.id }).find((a) => a.action === 'drain' || a.action === 'delete');
    expect(drain?.reason).toBe('expiryForced');
    expect(drain?.detail).toMatch(/forced expiry is not budgeted and overrides disruption\.budgets\[0\]/);
  });
});

describe('the health brake (maxUnhealthy)', () => {
  it('stops replacing for health above maxUnhealthy, still honours notices, and resumes when the count drops', async () => {
    h = await new Harness({ config: group({ size: 5, disruption: { maxUnhealthy: '40%' } }, { healthCheckInterval: '60s' }) }).start();
    h.reportHealthy();
    const [a, b, c, d] = h.byStatus('running');
    // A partition silences three agents (more than 40% of 5 = 2).
    await h.runHealthy(5 * MIN, 30_000, [a!.id, b!.id, c!.id]);
    expect(h.byStatus('draining')).toHaveLength(0);
    expect(h.provider.stats.create).toBe(5);
    expect(h.reconciler.plan('default', 'web').blocked.map((x) => x.code)).toContain('ShortCircuit');
    expect(h.reconciler.plan('default', 'web').summary.disruption.shortCircuited).toBe(true);
    // A termination notice still proceeds.
    h.reconciler.enqueue({ type: EventType.TerminationNotice, tenant: 'default', groupKey: 'web', instanceId: d!.id, timestamp: new Date(h.clock.nowMs() + 5 * MIN) });
    await h.settle();
    expect(h.db.getInstance(d!.id)?.drainReason).toBe('terminationNotice');
    // Two agents come back: two unhealthy left, at the limit: replacement resumes by itself.
    await h.runHealthy(2 * MIN, 30_000, [a!.id]);
    expect(h.db.getInstance(a!.id)?.status).toBe('draining');
    expect(h.db.getInstance(a!.id)?.drainReason).toBe('unhealthy');
    expect(h.reconciler.plan('default', 'web').summary.disruption.shortCircuited).toBe(false);
  });
});

describe('protection', () => {
  it('skips a protected instance for scale-down and rotation but not for health, and ends by itself', async () => {
    h = await new Harness({ config: group({ size: 2 }, { healthCheckInterval: '60s' }) }).start();
    h.reportHealthy();
    const [oldest, other] = h.byStatus('running');
    await h.reconciler.operator.protect(oldest!.id, new Date(h.clock.nowMs() + 30 * MIN), 'operator:alice');
    h.loader.update(group({ size: 1 }, { healthCheckInterval: '60s' }));
    await h.settle();
    expect(h.db.getInstance(oldest!.id)?.status).toBe('running');
    expect(h.db.getInstance(other!.id)?.status).toBe('draining');
    ackAll(h);
    await h.settle();
    // Drift: the protected one is not rotated while protected...
    h.loader.update(group({ size: 1 }, { healthCheckInterval: '60s' }, 'web:2'));
    await h.runHealthy(10 * MIN, MIN);
    expect(h.live().filter((i) => i.createReason === 'drift')).toHaveLength(0);
    const block = h.reconciler.plan('default', 'web').blocked.find((b) => b.code === 'Protected');
    expect(block?.instanceId).toBe(oldest!.id);
    // ...and is when the protection runs out, without any event.
    await h.runHealthy(25 * MIN, MIN);
    expect(h.live().filter((i) => i.createReason === 'drift')).toHaveLength(1);
  });

  it('does not shield an instance from health replacement', async () => {
    h = await new Harness({ config: group({ size: 2 }, { healthCheckInterval: '60s' }) }).start();
    h.reportHealthy();
    const [p] = h.byStatus('running');
    await h.reconciler.operator.protect(p!.id, new Date(h.clock.nowMs() + HOUR), 'operator:alice');
    h.provider.setStatus(p!.id, 'stopped');
    h.reconciler.enqueue({ type: EventType.CheckInstance, tenant: 'default', groupKey: 'web', instanceId: p!.id });
    await h.settle();
    expect(h.db.getInstance(p!.id)?.status).toBe('deleted');
  });

  it('keeps protection across a restart', async () => {
    h = await new Harness({ config: group({ size: 2 }, { healthCheckInterval: '60s' }) }).start();
    h.reportHealthy();
    const [p] = h.byStatus('running');
    await h.reconciler.operator.protect(p!.id, new Date(h.clock.nowMs() + HOUR), 'operator:alice');
    await h.crashAndRestart();
    expect(h.reconciler.operator.protectedUntil(p!.id)?.getTime()).toBe(h.clock.nowMs() + HOUR);
    h.loader.update(group({ size: 1 }, { healthCheckInterval: '60s' }));
    await h.settle();
    expect(h.db.getInstance(p!.id)?.status).toBe('running');
  });
});

describe('operator drains', () => {
  it('drains replacement first, refuses when the budget is spent unless forced', async () => {
    h = await new Harness({ config: group({ size: 3, maxSurge: 2, disruption: { budgets: [{ max: 1 }] } }) }).start();
    h.reportHealthy();
    const [a, b, c] = h.byStatus('running');
    await h.reconciler.operator.requestDrain(a!.id, { force: false, actor: 'operator:alice' });
    await h.settle();
    const replacement = h.live().find((i) => i.replaces === a!.id);
    expect(replacement?.createReason).toBe('operator');
    expect(h.db.getInstance(a!.id)?.status).toBe('running'); // replacement first
    await expect(h.reconciler.operator.requestDrain(b!.id, { force: false, actor: 'operator:alice' })).rejects.toThrow(
      /disruption\.budgets\[0\] \(max 1, all voluntary reasons\) is spent \(1 disrupted now\)/,
    );
    await expect(h.reconciler.operator.requestDrain(b!.id, { force: false, actor: 'operator:alice' })).rejects.toBeInstanceOf(ConflictError);
    await h.reconciler.operator.requestDrain(c!.id, { force: true, actor: 'operator:bob' });
    await h.settle();
    expect(h.live().some((i) => i.replaces === c!.id)).toBe(true);
    h.reportHealthy();
    await h.settle();
    expect(h.db.getInstance(a!.id)).toMatchObject({ status: 'draining', drainReason: 'operator' });
    expect(h.db.listAudit({ instanceId: c!.id }).find((x) => x.action === 'drainRequested')?.actor).toBe('operator:bob');
  });

  it('records a drain that waits for the budget (a rebalance recommendation) and starts it only once the budget allows', async () => {
    h = await new Harness({ config: group({ size: 3, maxSurge: 2, disruption: { budgets: [{ max: 1 }] } }) }).start();
    h.reportHealthy();
    const [a, b] = h.byStatus('running');
    await h.reconciler.operator.requestDrain(a!.id, { force: false, actor: 'operator:alice' });
    await h.settle();
    // The budget is spent by a's rotation: b's request is taken, not refused, and waits.
    await h.reconciler.operator.requestDrain(b!.id, { force: false, waitForBudget: true, actor: 'cloud', why: 'rebalance recommendation' });
    await h.settle();
    expect(h.live().some((i) => i.replaces === b!.id)).toBe(false);
    expect(h.reconciler.plan('default', 'web').blocked.map((x) => x.code)).toContain('BudgetExhausted');
    // a's rotation completes: its replacement serves, a drains and goes; then b's starts.
    h.reportHealthy();
    await h.settle();
    expect(h.db.getInstance(a!.id)?.status).toBe('draining');
    ackAll(h);
    await h.settle();
    expect(h.db.getInstance(a!.id)?.status).toBe('deleted');
    expect(h.live().find((i) => i.replaces === b!.id)?.createReason).toBe('operator');
    expect(h.db.listAudit({ instanceId: b!.id }).find((x) => x.action === 'drainRequested')?.detail).toBe('rebalance recommendation: drain requested; replacement first, when the budget allows');
  });

  it('extends a drain, capped by maxDrainTimeout, and refuses to extend what is not draining', async () => {
    h = await new Harness({ config: group({ size: 2, disruption: { maxDrainTimeout: '30m' } }) }).start();
    h.reportHealthy();
    h.loader.update(group({ size: 1, disruption: { maxDrainTimeout: '30m' } }));
    await h.settle();
    const [d] = h.byStatus('draining');
    const started = d!.drainStartedAt!.getTime();
    const r1 = await h.reconciler.operator.extendDrain(d!.id, 10 * MIN, 'operator:alice');
    expect(r1).toMatchObject({ capped: false });
    expect(r1.drainDeadline.getTime()).toBe(started + 20 * MIN);
    const r2 = await h.reconciler.operator.extendDrain(d!.id, HOUR, 'operator:alice');
    expect(r2).toMatchObject({ capped: true });
    expect(r2.drainDeadline.getTime()).toBe(started + 30 * MIN);
    const [serving] = h.byStatus('running');
    await expect(h.reconciler.operator.extendDrain(serving!.id, MIN, 'x')).rejects.toThrow(/is not draining \(status running\)/);
    // The new deadline is the one the timer keeps.
    await h.runHealthy(29 * MIN, MIN);
    expect(h.db.getInstance(d!.id)?.status).toBe('draining');
    await h.runHealthy(2 * MIN, MIN);
    expect(h.db.getInstance(d!.id)?.status).toBe('deleted');
  });

  it('cancels an operator drain: back in service, not picked again while held, the replacement removed', async () => {
    const { harness, a } = await operatorDrainWithReplacementUp();
    h = harness;
    await h.settle();
    expect(h.db.getInstance(a.id)?.status).toBe('draining');
    const result = await h.reconciler.operator.cancelDrain(a.id, 'operator:alice');
    expect(result.heldUntil.getTime()).toBe(h.clock.nowMs() + 2 * HOUR);
    await h.settle();
    expect(h.db.getInstance(a.id)).toMatchObject({ status: 'running', drainReason: null, drainDeadline: null });
    // The replacement made for it is the surplus and goes.
    const replacement = h.live().find((i) => i.replaces === a.id);
    expect(replacement?.status).toBe('draining');
    // A scale-down drain cannot be cancelled, with the reason.
    h.loader.update(group({ size: 1, disruption: { cancelHold: '2h' } }));
    ackAll(h);
    await h.settle();
    const scaleDownVictim = h.byStatus('draining').find((i) => i.drainReason === 'scaleDown');
    if (scaleDownVictim) {
      await expect(h.reconciler.operator.cancelDrain(scaleDownVictim.id, 'x')).rejects.toThrow(/drains for scaleDown, which cannot be cancelled/);
    }
  });

  it('cancels an operator drain that a reconcile started while the cancel was writing its hold (not yet visible, as with etcd)', async () => {
    const { harness, a } = await operatorDrainWithReplacementUp();
    h = harness;
    // The replacement is up; the next reconcile would start the drain.
    expect(h.db.getInstance(a.id)?.status).toBe('running');
    // That reconcile runs while the cancel's first state write is in flight and not yet visible
    // (with etcd the write is seen when its answer comes back).
    const state = h.reconciler.operatorState;
    const write = state.set.bind(state);
    let interleaved = false;
    state.set = async (key, value) => {
      if (!interleaved) {
        interleaved = true;
        await h!.settle();
        expect(h!.db.getInstance(a.id)).toMatchObject({ status: 'draining', drainReason: 'operator' });
      }
      await write(key, value);
    };
    await h.reconciler.operator.cancelDrain(a.id, 'operator:alice');
    expect(interleaved).toBe(true);
    expect(h.db.getInstance(a.id)).toMatchObject({ status: 'running', drainReason: null, drainDeadline: null });
    expect(h.db.listAudit({ instanceId: a.id }).at(-1)).toMatchObject({ action: 'drainCancelled', reason: 'operator' });
    await h.settle();
    expect(h.db.getInstance(a.id)?.status).toBe('running');
  });

  it('holds a cancelled drift rotation and reports it as RotationHeld until the hold ends', async () => {
    h = await new Harness({ config: group({ size: 1, disruption: { cancelHold: '1h' } }) }).start();
    h.reportHealthy();
    const [a] = h.byStatus('running');
    h.loader.update(group({ size: 1, disruption: { cancelHold: '1h' } }, {}, 'web:2'));
    await h.settle();
    h.reportHealthy();
    await h.settle();
    expect(h.db.getInstance(a!.id)?.drainReason).toBe('drift');
    await h.reconciler.operator.cancelDrain(a!.id, 'operator:alice');
    await h.settle();
    ackAll(h);
    await h.runHealthy(10 * MIN, MIN);
    const held = h.reconciler.plan('default', 'web').blocked.find((b) => b.code === 'RotationHeld');
    expect(held?.instanceId).toBe(a!.id);
    expect(h.live().filter((i) => i.replaces === a!.id && i.status !== 'deleted' && i.status !== 'draining')).toHaveLength(0);
    await h.runHealthy(55 * MIN, 5 * MIN);
    expect(h.live().some((i) => i.replaces === a!.id && i.createReason === 'drift' && i.status === 'running')).toBe(true);
  });

  it('forces a drain: the instance is deleted now, and the audit says who', async () => {
    h = await new Harness({ config: group({ size: 2 }) }).start();
    h.reportHealthy();
    h.loader.update(group({ size: 1 }));
    await h.settle();
    const [d] = h.byStatus('draining');
    await h.reconciler.operator.forceDrain(d!.id, 'operator:carol');
    await h.settle();
    expect(h.db.getInstance(d!.id)?.status).toBe('deleted');
    expect(h.db.listAudit({ instanceId: d!.id }).find((a) => a.action === 'drainForced')?.actor).toBe('operator:carol');
  });

  it('reports since when a block has stood', async () => {
    h = await new Harness({ config: group({ size: 4, maxSurge: 0, disruption: { budgets: [{ max: 0, reasons: ['drift'] }] } }) }).start();
    h.reportHealthy();
    h.loader.update(group({ size: 4, maxSurge: 1, disruption: { budgets: [{ max: 0, reasons: ['drift'] }] } }, {}, 'web:2'));
    await h.settle();
    const first = h.reconciler.plan('default', 'web').blocked.find((b) => b.code === 'BudgetExhausted');
    const since = first?.since?.getTime();
    expect(since).toBe(h.clock.nowMs());
    await h.runHealthy(10 * MIN, MIN);
    expect(h.reconciler.plan('default', 'web').blocked.find((b) => b.code === 'BudgetExhausted')?.since?.getTime()).toBe(since);
  });
});
