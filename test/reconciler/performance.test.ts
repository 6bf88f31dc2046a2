import { afterEach, describe, expect, it, vi } from 'vitest';
import * as planModule from '../../src/reconciler/plan.js';
import { Harness, configWith } from '../helpers/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('performance guards (see bench/README.md)', () => {
  it('a scale-out replans its group once when its creates finish, not once per create', async () => {
    let reconciled = 0;
    h = new Harness({
      config: configWith({ default: { web: { template: 'web', size: 0 } } }, {}, { provider: { kind: 'sim', maxCallsPerSecond: 100 } }),
      sim: { createLatencyMs: 50 },
      reconciler: { observer: { reconciled: () => void reconciled++ } },
    });
    await h.start();
    await h.run(1_000, 100);
    const before = reconciled;
    h.loader.update(configWith({ default: { web: { template: 'web', size: 200 } } }, {}, { provider: { kind: 'sim', maxCallsPerSecond: 100 } }));
    await h.run(5_000, 10);
    expect(h.byStatus('running')).toHaveLength(200);
    expect(h.provider.stats.create).toBe(200);
    // One plan for the config change, a few for completions that found nothing else in flight.
    expect(reconciled - before).toBeLessThan(20);
  });
});

describe('first health reports of a booting group (bench B5)', () => {
  const boot = async (firstHealthReplanIntervalMs?: number): Promise<{ plansDuringReports: number; plansAfterWindow: number }> => {
    let reconciled = 0;
    h = new Harness({
      config: configWith({ default: { web: { template: 'web', size: 50 } } }),
      reconciler: { firstHealthReplanIntervalMs, observer: { reconciled: () => void reconciled++ } },
    });
    await h.start();
    const running = h.byStatus('running');
    expect(running).toHaveLength(50);
    const before = reconciled;
    // The reports trickle in, one per turn, as agents' messages do.
    for (const i of running) {
      h.db.recordHealth(i.id, h.clock.now());
      await h.settle();
    }
    const plansDuringReports = reconciled - before;
    await h.tick(1_000);
    return { plansDuringReports, plansAfterWindow: reconciled - before };
  };

  it('replan the group once per window: the first report at once, the rest together at its end', async () => {
    const { plansDuringReports, plansAfterWindow } = await boot(250);
    expect(plansDuringReports).toBe(1);
    expect(plansAfterWindow).toBe(2);
  });

  it('replan it once per report without a window (the default)', async () => {
    const { plansDuringReports } = await boot();
    expect(plansDuringReports).toBe(50);
  });
});

describe('wake-ups for health reports going stale (bench B5)', () => {
  const reporting = async (): Promise<{ harness: Harness; plans: () => number }> => {
    let reconciled = 0;
    const harness = new Harness({
      // No periodic resync: the only wake-ups left are the plan's own.
      config: configWith({ default: { web: { template: 'web', size: 20 } } }, { resyncInterval: 0 }),
      reconciler: { observer: { reconciled: () => void reconciled++ } },
    });
    await harness.start();
    harness.reportHealthy();
    await harness.settle();
    return { harness, plans: () => reconciled };
  };

  it('do not replan a group whose agents keep reporting', async () => {
    const { harness, plans } = await reporting();
    h = harness;
    const before = plans();
    const timerBefore = h.db.listTimers().find((t) => t.key.includes('default/web'));
    // 30 minutes of reports every health interval (60 s): the oldest report nears the threshold
    // (3 intervals) ten times. Each time the store says none is stale, so nothing is planned.
    await h.runHealthy(30 * 60_000, 60_000);
    expect(plans() - before).toBe(0);
    // The wake-up moved on with the reports: it is the oldest report's threshold, still durable.
    const timer = h.db.listTimers().find((t) => t.key.includes('default/web'));
    expect(timer?.dueAt).toBeGreaterThan(timerBefore!.dueAt);
    expect(timer?.dueAt).toBeLessThanOrEqual(h.clock.nowMs() + 3 * 60_000);
  });

  it('still check an instance at the moment its report goes stale', async () => {
    const { harness, plans } = await reporting();
    h = harness;
    await h.runHealthy(10 * 60_000, 60_000);
    const [silent] = h.byStatus('running');
    const lastReport = h.db.getInstance(silent!.id)!.healthAt!.getTime();
    const checks: number[] = [];
    h.provider.onCallStart((c) => {
      if (c.op === 'status' && c.providerId === silent!.providerId) checks.push(c.at);
    });
    const before = plans();
    await h.runHealthy(5 * 60_000, 60_000, [silent!.id]);
    // Asked at the threshold (3 intervals after its last report), to the millisecond, then drained.
    expect(checks[0]).toBe(lastReport + 3 * 60_000);
    expect(h.db.getInstance(silent!.id)).toMatchObject({ status: 'draining', drainReason: 'unhealthy' });
    expect(plans() - before).toBeGreaterThan(0);
  });
});

describe('current plans for metrics', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('are the last reconcile\'s plans, not planned again, while a group not reconciled yet, or any group without leadership, is planned', async () => {
    h = new Harness({ config: configWith({ default: { web: { template: 'web', size: 3 }, api: { template: 'web', size: 2 } } }, { resyncInterval: 0 }) });
    await h.start();
    h.reportHealthy();
    await h.settle();
    const planned = vi.spyOn(planModule, 'planGroup');
    const plans = h.reconciler.currentPlans();
    expect(planned).not.toHaveBeenCalled();
    expect(plans.map((p) => [p.group, p.summary.size, p.summary.live])).toEqual(expect.arrayContaining([['web', 3, 3], ['api', 2, 2]]));
    // A group the config adds is planned on the spot until it is reconciled.
    h.loader.update(configWith({ default: { web: { template: 'web', size: 3 }, api: { template: 'web', size: 2 }, batch: { template: 'worker', size: 1 } } }, { resyncInterval: 0 }));
    const withNew = h.reconciler.currentPlans();
    expect(withNew.find((p) => p.group === 'batch')?.summary.size).toBe(1);
    expect(planned).toHaveBeenCalledTimes(1);
    // Without leadership the last plans are out of date: every group is planned.
    h.leader = false;
    h.reconciler.currentPlans();
    expect(planned).toHaveBeenCalledTimes(4);
  });
});
