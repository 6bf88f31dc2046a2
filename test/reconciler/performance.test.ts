import { afterEach, describe, expect, it } from 'vitest';
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
