/**
 * B1 scale-out: one group 0 → 1000 at the provider's limit (200 calls/s, burst 10, 50 ms per
 * create). Time runs from the config change that asks for 1000 until the provider has completed
 * the 1000th create. The floor is computed from the run's own parameters (`b1Floor`): the burst
 * at once, the rest at the rate, plus one create's latency, plus the config debounce (0 here: the
 * change is applied with `ConfigLoader.update`, not through the watched file).
 *
 * With `probes > 0` it is also B2's bulk load: see b2-urgent.ts.
 */
import { EventType, type InstanceRecord } from '../src/index.js';
import { CREATE_LATENCY_MS, PROVIDER_BURST, PROVIDER_RATE, TEMPLATES, buildEnv, type BenchEnv, loopDelay, now, percentile, round, shardConfig, sleep } from './common.js';

export const B1_SIZE = 1000;
const TENANT = 'bench';
const BULK = 'scale';
const PROBE = 'probe';
/**
 * B2's probes are spread over this many groups (probe-0, probe-1, ...): a group is reconciled by
 * one worker at a time, so 200 stops in one group within 6 s would measure that group's own
 * serial work (each check waits for its status call), not urgent work overtaking bulk work.
 */
const PROBE_GROUPS = 10;
const probeGroup = (k: number): string => `${PROBE}-${k % PROBE_GROUPS}`;
const isProbeGroup = (group: string): boolean => group.startsWith(`${PROBE}-`);

export interface B1Result {
  seconds: number;
  /** The floor, from the parameters below. */
  limitSeconds: number;
  /** What the floor is computed from (the run's own settings). */
  floor: { creates: number; callsPerSecond: number; burst: number; createLatencyMs: number; debounceMs: number };
  ratio: number;
  creates: number;
  throttled: number;
  /** Achieved create start rate between the first and the last create (calls/s). */
  createRate: number;
  firstCreateMs: number;
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  errors: number;
}

export interface B2Result {
  probes: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Two rate-limit slots (the status call and the create) at the provider's limit. */
  limitMs: number;
  ratio: number;
  statusLatencyMs: number;
  /** Probes whose replacement create was not seen (must be 0). */
  missed: number;
}

/** B2: one probe every 30 ms from 250 ms on (200 probes: until 6.25 s, inside the ~8 s bulk run they share the provider with). */
const PROBE_SPACING_MS = 30;

export interface ScaleOutOptions {
  /** B2: this many urgent probes during the scale-out (0 for plain B1). */
  probes: number;
  /** Status call latency at the provider (excluded from B2's figure). */
  statusLatencyMs?: number;
  /** B9: called once the store exists, before the reconciler starts (webhooks are wired here). */
  setup?: (env: BenchEnv) => void;
  /** B9: called after the run, before the store closes, however the run ended. */
  teardown?: (env: BenchEnv) => Promise<void>;
}

/** Debounce between the config change and its reload: 0, the run applies it with `ConfigLoader.update` (a file edit would add the loader's `debounceMs`, 50 ms by default). */
const CONFIG_DEBOUNCE_MS = 0;

/**
 * B1's physical floor: the provider accepts its burst at once, then calls at its rate; the last
 * create then takes its latency; the change itself waits for the config debounce.
 */
export function b1Floor(p: B1Result['floor']): number {
  return p.debounceMs / 1000 + Math.max(0, p.creates - p.burst) / p.callsPerSecond + p.createLatencyMs / 1000;
}

interface Probe {
  instanceId: string;
  group: string;
  providerId: string;
  enqueuedAt: number;
  statusStart: number | null;
  statusEnd: number | null;
  createAt: number | null;
}

function config(bulkSize: number, probes: number): Record<string, unknown> {
  const groups: Record<string, { size: number; template: string }> = { [BULK]: { size: bulkSize, template: 'web' } };
  for (let g = 0; g < Math.min(probes, PROBE_GROUPS); g++) groups[probeGroup(g)] = { size: Math.ceil((probes - g) / PROBE_GROUPS), template: 'web' };
  return {
    shard: shardConfig(),
    templates: TEMPLATES,
    groups: { [TENANT]: groups },
    provider: { kind: 'sim', maxCallsPerSecond: PROVIDER_RATE },
  };
}

export async function runScaleOut(options: ScaleOutOptions): Promise<{ b1: B1Result; b2: B2Result | null }> {
  const statusLatencyMs = options.statusLatencyMs ?? 20;
  const env = buildEnv({ config: config(0, options.probes), sim: { statusLatencyMs } });
  const { db, provider, reconciler, loader } = env;
  options.setup?.(env);
  try {
    // Before the clock starts: the probe group (B2) is created and reports healthy.
    await reconciler.start();
    await reconciler.idle();
    // In turn over the groups (probe-0, probe-1, ..., probe-9, probe-0, ...), so that each group
    // gets a probe every PROBE_GROUPS × PROBE_SPACING_MS (300 ms), not 20 in a row 30 ms apart.
    const byGroup = new Map<string, InstanceRecord[]>();
    for (const i of db.listInstances({ tenant: TENANT }).filter((r) => isProbeGroup(r.group))) byGroup.set(i.group, [...(byGroup.get(i.group) ?? []), i]);
    const groups = [...byGroup.values()];
    const turns = Math.max(0, ...groups.map((g) => g.length));
    const probeInstances = Array.from({ length: turns }, (_, turn) => groups.flatMap((g) => g.slice(turn, turn + 1))).flat();
    if (probeInstances.length !== options.probes) throw new Error(`expected ${options.probes} probe instances, found ${probeInstances.length}`);
    for (const i of probeInstances) db.recordHealth(i.id, env.clock.now());
    await reconciler.idle();
    await sleep(200); // the provider's token bucket refills
    const createsBefore = provider.stats.create;
    const throttledBefore = provider.stats.throttled;

    const probes = new Map<string, Probe>(); // by Drover instance id
    const probesByProvider = new Map<string, Probe>();
    let bulkCreatesDone = 0;
    let firstCreateStart: number | null = null;
    let lastCreateStart = 0;
    let bulkCreateStarts = 0;
    let finishedAt = 0;
    let resolveDone: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (resolveDone = resolve));
    const bulkKeys = new Set<string>();

    const offStart = provider.onCallStart((call) => {
      const t = now();
      if (call.op === 'status' && call.providerId) {
        const probe = probesByProvider.get(call.providerId);
        if (probe && probe.statusStart === null) probe.statusStart = t;
      } else if (call.op === 'create' && call.idempotencyKey) {
        const record = db.getInstance(call.idempotencyKey);
        if (!record) return;
        if (record.group === BULK) {
          bulkKeys.add(record.id);
          bulkCreateStarts++;
          firstCreateStart ??= t;
          lastCreateStart = t;
        } else if (isProbeGroup(record.group)) {
          // The replacement names what it replaces; failing that, it is the first create for
          // the group since the oldest probe still waiting.
          let probe = record.replaces ? probes.get(record.replaces) : undefined;
          if (!probe || probe.createAt !== null) probe = [...probes.values()].find((p) => p.createAt === null && p.group === record.group);
          if (probe && probe.createAt === null) probe.createAt = t;
        }
      }
    });
    const offDone = provider.onCall((call) => {
      const t = now();
      if (call.op === 'status' && call.providerId) {
        const probe = probesByProvider.get(call.providerId);
        if (probe && probe.statusEnd === null) probe.statusEnd = t;
      } else if (call.op === 'create' && call.outcome === 'ok' && call.idempotencyKey && bulkKeys.has(call.idempotencyKey)) {
        bulkCreatesDone++;
        if (bulkCreatesDone === B1_SIZE) {
          finishedAt = t;
          resolveDone();
        }
      }
    });

    const delay = loopDelay();
    const startedAt = now();
    loader.update(config(B1_SIZE, options.probes));

    // B2: an instance of another group stops; its CheckInstance must overtake the bulk work.
    const probeTimers: NodeJS.Timeout[] = [];
    probeInstances.forEach((instance, k) => {
      probeTimers.push(
        setTimeout(
          () => {
            const providerId = instance.providerId ?? '';
            const probe: Probe = { instanceId: instance.id, group: instance.group, providerId, enqueuedAt: 0, statusStart: null, statusEnd: null, createAt: null };
            probes.set(instance.id, probe);
            probesByProvider.set(providerId, probe);
            provider.setStatus(providerId, 'stopped');
            probe.enqueuedAt = now();
            reconciler.enqueue({ type: EventType.CheckInstance, tenant: TENANT, groupKey: instance.group, instanceId: instance.id, cause: 'probe' });
          },
          250 + k * PROBE_SPACING_MS,
        ),
      );
    });

    const timeout = setTimeout(resolveDone, 60_000);
    await done;
    clearTimeout(timeout);
    const lag = delay.stop();
    const seconds = ((finishedAt || now()) - startedAt) / 1000;
    // Every probe fired must see its replacement's create (idle() does not wait for calls
    // waiting for a future rate-limit slot).
    const waitUntil = now() + 15_000;
    while ([...probes.values()].some((p) => p.createAt === null) && now() < waitUntil) await sleep(10);
    for (const t of probeTimers) clearTimeout(t);
    await reconciler.idle();
    offStart();
    offDone();

    const floor = { creates: B1_SIZE, callsPerSecond: PROVIDER_RATE, burst: PROVIDER_BURST, createLatencyMs: CREATE_LATENCY_MS, debounceMs: CONFIG_DEBOUNCE_MS };
    const limitSeconds = b1Floor(floor);
    const b1: B1Result = {
      seconds: round(seconds, 3),
      limitSeconds: round(limitSeconds, 3),
      floor,
      ratio: round(seconds / limitSeconds, 3),
      creates: provider.stats.create - createsBefore,
      throttled: provider.stats.throttled - throttledBefore,
      createRate: round(bulkCreateStarts > 1 ? (bulkCreateStarts - 1) / ((lastCreateStart - (firstCreateStart ?? 0)) / 1000) : 0, 1),
      firstCreateMs: round((firstCreateStart ?? startedAt) - startedAt, 1),
      loopDelayP99Ms: lag.p99Ms,
      loopDelayMaxMs: lag.maxMs,
      errors: env.errors.length,
    };
    if (bulkCreatesDone !== B1_SIZE) throw new Error(`B1: only ${bulkCreatesDone} of ${B1_SIZE} creates completed within 60 s`);

    let b2: B2Result | null = null;
    if (options.probes > 0) {
      const latencies: number[] = [];
      let missed = 0;
      for (const p of probes.values()) {
        if (p.createAt === null) {
          missed++;
          continue;
        }
        const providerLatency = p.statusStart !== null && p.statusEnd !== null ? p.statusEnd - p.statusStart : 0;
        latencies.push(p.createAt - p.enqueuedAt - providerLatency);
      }
      // The bucket is empty while the bulk runs: each call waits for its slot at the rate.
      const limitMs = 2 * (1000 / PROVIDER_RATE);
      const p99 = percentile(latencies, 99);
      b2 = {
        probes: probes.size,
        p50Ms: round(percentile(latencies, 50), 1),
        p99Ms: round(p99, 1),
        maxMs: round(Math.max(0, ...latencies), 1),
        limitMs,
        ratio: round(p99 / limitMs, 2),
        statusLatencyMs,
        missed,
      };
    }
    return { b1, b2 };
  } finally {
    await options.teardown?.(env);
    await env.close();
  }
}

export async function runB1(): Promise<B1Result> {
  return (await runScaleOut({ probes: 0 })).b1;
}
