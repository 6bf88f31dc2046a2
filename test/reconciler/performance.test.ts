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
