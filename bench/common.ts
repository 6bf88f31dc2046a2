/**
 * Shared pieces of the benchmarks: a real Reconciler on the wall clock, a real SQLite file in a
 * temp dir, SimProvider, and small statistics helpers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import {
  ConfigLoader,
  DefaultInstanceManager,
  Reconciler,
  SimProvider,
  SystemClock,
  openLocalDb,
  type LocalDb,
  type Provider,
  type ReconcilerObserver,
  type SimProviderOptions,
} from '../src/index.js';

/** The provider API limit every scenario runs at. */
export const PROVIDER_RATE = 200;
/**
 * The provider's token-bucket burst: calls it accepts at once when its bucket is full, before the
 * rate applies (SimProvider's default for 200/s is 10; set here so the floors use the same value).
 */
export const PROVIDER_BURST = 10;
/** Provider create latency. */
export const CREATE_LATENCY_MS = 50;

export interface BenchEnv<P extends Provider = SimProvider> {
  dir: string;
  dbPath: string;
  db: LocalDb;
  clock: SystemClock;
  provider: P;
  loader: ConfigLoader;
  reconciler: Reconciler;
  errors: string[];
  close(): Promise<void>;
}

export interface EnvOptions<P extends Provider = SimProvider> {
  config: Record<string, unknown>;
  sim?: Partial<Omit<SimProviderOptions, 'clock'>>;
  observer?: ReconcilerObserver;
  initialReconcileOnStart?: boolean;
  /** Reuse an existing database file and provider (B3 populates them first), or another provider (B6: EC2). */
  dir?: string;
  provider?: P;
}

/** A fresh temp dir for a scenario's SQLite file. */
export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'drover-bench-'));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Builds a Reconciler on the real clock, a real SQLite file and SimProvider. Not started. */
export function buildEnv<P extends Provider = SimProvider>(options: EnvOptions<P>): BenchEnv<P> {
  const clock = new SystemClock();
  const dir = options.dir ?? tempDir();
  const dbPath = join(dir, 'drover.db');
  const db = openLocalDb(dbPath);
  // Without a provider of its own the scenario gets the SimProvider (P's default).
  const provider: P = options.provider ?? (new SimProvider({ clock, seed: 1, maxCallsPerSecond: PROVIDER_RATE, burst: PROVIDER_BURST, createLatencyMs: CREATE_LATENCY_MS, ...options.sim }) as unknown as P);
  const loader = ConfigLoader.fromObject(options.config);
  const errors: string[] = [];
  // SystemClock timers do not hold the process open; this does, while the scenario runs.
  const keepAlive = setInterval(() => undefined, 1_000);
  const reconciler = new Reconciler({
    instanceManager: new DefaultInstanceManager({ localDb: db, provider, configLoader: loader, clock }),
    configLoader: loader,
    localDb: db,
    provider,
    clock,
    isLeader: () => true,
    notifyDrain: () => undefined,
    notifyError: (group, instanceId, message) => {
      if (errors.length < 100) errors.push(`${group} ${instanceId}: ${message}`);
    },
    observer: options.observer,
    initialReconcileOnStart: options.initialReconcileOnStart,
  });
  return {
    dir,
    dbPath,
    db,
    clock,
    provider,
    loader,
    reconciler,
    errors,
    close: async () => {
      await reconciler.stop();
      clearInterval(keepAlive);
      db.close();
      removeDir(dir);
    },
  };
}

/** Shard settings shared by the scenarios. */
export function shardConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'bench',
    healthCheckInterval: '60s',
    missedHealthThreshold: 3,
    startupTimeout: '10m',
    defaultDrainTimeout: '5m',
    resyncInterval: '0s',
    workers: 16,
    ...extra,
  };
}

export const TEMPLATES = { web: { image: 'web:1' } };

/** Nearest-rank percentile of `values` (0 when empty). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? 0;
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export const now = (): number => performance.now();

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Samples RSS every `everyMs` until stopped; reports the peak seen (MB). */
export class RssSampler {
  private peak = process.memoryUsage.rss();
  private readonly handle: NodeJS.Timeout;

  constructor(everyMs = 10) {
    this.handle = setInterval(() => this.sample(), everyMs);
  }

  sample(): void {
    const rss = process.memoryUsage.rss();
    if (rss > this.peak) this.peak = rss;
  }

  stop(): number {
    clearInterval(this.handle);
    this.sample();
    return this.peak / 1024 / 1024;
  }
}

/** Process-lifetime peak RSS in MB (getrusage). */
export function maxRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** Event-loop delay while a scenario runs (how long the loop was blocked). */
export function loopDelay(): { stop(): { p99Ms: number; maxMs: number } } {
  const histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: 5 });
  histogram.enable();
  return {
    stop: () => {
      histogram.disable();
      return { p99Ms: round(histogram.percentile(99) / 1e6, 1), maxMs: round(histogram.max / 1e6, 1) };
    },
  };
}
