/**
 * SimProvider against the shared Provider contract (test/providers/conformance/suite.ts), twice:
 * on a manual clock without latencies (every call answers at once; `settle` advances the clock),
 * and on the wall clock with a few milliseconds of latency per call, so that concurrent calls
 * (the repeated creates) really overlap while the first is in progress.
 */
import { ManualClock, SystemClock } from '../../../src/clock/index.js';
import { SimProvider } from '../../../src/providers/sim/index.js';
import { describeProviderConformance, type ConformanceTarget, type InjectedFault, type ProviderOperation } from '../conformance/suite.js';

function faultsOf(sim: SimProvider): NonNullable<ConformanceTarget['faults']> {
  const faults: Record<InjectedFault, (op: ProviderOperation) => void> = {
    throttled: (op) => sim.throttleNext(op, 1),
    transient: (op) => sim.failNext(op, 1),
    permanent: (op) => sim.failNext(op, 1, { permanent: true }),
  };
  return faults;
}

describeProviderConformance('sim', async () => {
  const clock = new ManualClock(new Date(Date.UTC(2030, 0, 1)));
  const sim = new SimProvider({ clock, seed: 7 });
  return {
    provider: sim,
    template: { image: 'web:1' },
    settle: () => clock.advance(1_000),
    close: async () => undefined,
    faults: faultsOf(sim),
  };
});

describeProviderConformance('sim with latencies', async () => {
  const clock = new SystemClock();
  const sim = new SimProvider({ clock, seed: 8, createLatencyMs: 5, deleteLatencyMs: 3, statusLatencyMs: 1, listLatencyMs: 2 });
  return {
    provider: sim,
    template: { image: 'web:1' },
    // Every call completes within its latency: nothing is left to wait for between polls but a turn.
    settle: () => clock.sleep(5),
    maxSettles: 20,
    close: async () => undefined,
    faults: faultsOf(sim),
  };
});
