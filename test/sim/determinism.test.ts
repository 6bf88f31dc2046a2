import { describe, expect, it } from 'vitest';
import { generateScenario } from '../../sim/scenario.js';
import { runScenario } from '../../sim/world.js';

describe('simulator determinism', () => {
  it('draws the same fleet and schedule from the same seed, and different ones from different seeds', () => {
    expect(generateScenario(42)).toEqual(generateScenario(42));
    expect(generateScenario(42)).not.toEqual(generateScenario(43));
    expect(generateScenario(42).steps).toHaveLength(150);
    // A shorter schedule is the start of the longer one.
    expect(generateScenario(42, { steps: 150 }).steps).toEqual(generateScenario(42, { steps: 200 }).steps.slice(0, 150));
    expect(generateScenario(42, { steps: 17 }).steps).toHaveLength(17);
  });

  it('replays a seed byte for byte: same seed, same trace, whatever ran before it in the process', async () => {
    const first = await runScenario(generateScenario(7, { steps: 120 }));
    await runScenario(generateScenario(8, { steps: 60 }));
    const again = await runScenario(generateScenario(7, { steps: 120 }));
    expect(first.trace.length).toBeGreaterThan(120);
    expect(again.trace.join('\n')).toBe(first.trace.join('\n'));
    expect(again.stats).toEqual(first.stats);
  });

  it('traces what each step did and what the reconciler did in answer', async () => {
    const { trace } = await runScenario(generateScenario(3, { steps: 40 }));
    expect(trace[0]).toMatch(/^start 0:00:00 \d{4}-\d\d-\d\dT[\d:.]+Z fleet: /);
    expect(trace.filter((l) => /^#\d+ \d+:\d\d:\d\d /.test(l))).toHaveLength(40);
    expect(trace.join('\n')).toMatch(/create \S+\/i-[0-9a-f]{8} scaleUp/);
    expect(trace.at(-1)).toMatch(/^end .* stable$/);
  });
});
