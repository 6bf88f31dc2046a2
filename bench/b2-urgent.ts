/**
 * B2 urgent work during bulk work: while a B1 scale-out (0 → 1000) runs, 200 probes, spaced
 * 30 ms apart (at least 200, so p99 is not the maximum): an instance of another group turns `stopped` at the provider and gets a
 * CheckInstance. Measured: enqueue → the replacement's create call reaching the provider, minus
 * the provider's own status-call latency. Target p99 ≤ 100 ms.
 *
 * The B1 figures of this run are reported too (`b2.bulk`), but B1's own figure comes from a
 * run without probes: the probes add 600 provider calls (status, delete, create) to the limit.
 */
import { runScaleOut, type B1Result, type B2Result } from './b1-scale-out.js';

export const B2_PROBES = 200;

export async function runB2(): Promise<B2Result & { bulk: B1Result }> {
  const { b1, b2 } = await runScaleOut({ probes: B2_PROBES, statusLatencyMs: 20 });
  if (!b2) throw new Error('B2: no probe results');
  return { ...b2, bulk: b1 };
}
