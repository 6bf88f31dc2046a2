/**
 * Test harness: a reconciler on a manual clock, real SQLite and SimProvider, with recorders for
 * drain notices and errors, and helpers to move time and report health.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConfigLoader,
  DefaultInstanceManager,
  ManualClock,
  Reconciler,
  SimProvider,
  openLocalDb,
  type InstanceRecord,
  type LocalDb,
  type ReconcilerOptions,
  type SimProviderOptions,
} from '../../src/index.js';

export interface DrainNotice {
  instanceId: string;
  group: string;
  reason: string;
  unhealthyAt: Date;
  deleteAt: Date;
}

export interface ErrorNotice {
  group: string;
  instanceId: string;
  message: string;
}

export interface HarnessOptions {
  config?: Record<string, unknown>;
  sim?: Partial<Omit<SimProviderOptions, 'clock'>>;
  leader?: boolean;
  reconciler?: Partial<ReconcilerOptions>;
  /** Use a database file (to restart on it); default: a file in a fresh temp dir. */
  start?: Date;
}

export const BASE_CONFIG = {
  shard: {
    id: 'test',
    healthCheckInterval: '60s',
    missedHealthThreshold: 3,
    startupTimeout: '5m',
    defaultDrainTimeout: '5m',
  },
  templates: { web: { image: 'web:1' }, worker: { image: 'worker:1' } },
};

export class Harness {
  readonly clock: ManualClock;
  readonly dir: string;
  readonly dbPath: string;
  db: LocalDb;
  readonly provider: SimProvider;
  readonly loader: ConfigLoader;
  reconciler: Reconciler;
  readonly drains: DrainNotice[] = [];
  readonly errors: ErrorNotice[] = [];
  leader: boolean;
  private readonly options: HarnessOptions;

  constructor(options: HarnessOptions = {}) {
    this.options = options;
    this.clock = new ManualClock(options.start ?? new Date('2026-01-05T00:00:00Z'));
    this.dir = mkdtempSync(join(tmpdir(), 'drover-test-'));
    this.dbPath = join(this.dir, 'drover.db');
    this.db = openLocalDb(this.dbPath);
    this.provider = new SimProvider({ clock: this.clock, seed: 1, ...options.sim });
    this.loader = ConfigLoader.fromObject(options.config ?? BASE_CONFIG);
    this.leader = options.leader ?? true;
    this.reconciler = this.build();
  }

  private builds = 0;

  private build(): Reconciler {
    let seed = 42 + 1_000 * this.builds++;
    return new Reconciler({
      instanceManager: new DefaultInstanceManager({ localDb: this.db, provider: this.provider, configLoader: this.loader, clock: this.clock }),
      configLoader: this.loader,
      localDb: this.db,
      provider: this.provider,
      clock: this.clock,
      isLeader: () => this.leader,
      notifyDrain: (instanceId, group, reason, unhealthyAt, deleteAt) => this.drains.push({ instanceId, group, reason, unhealthyAt, deleteAt }),
      notifyError: (group, instanceId, message) => this.errors.push({ group, instanceId, message }),
      random: () => {
        seed = (seed * 16807) % 2147483647;
        return seed / 2147483647;
      },
      ...this.options.reconciler,
    });
  }

  async start(): Promise<this> {
    await this.reconciler.start();
    await this.reconciler.quiescent();
    if (!this.options.sim?.createLatencyMs && !this.options.sim?.deleteLatencyMs) await this.settle();
    return this;
  }

  /** Waits until nothing is queued, due or in flight. */
  async settle(): Promise<void> {
    await this.reconciler.idle();
  }

  /** Advances the clock (firing timers on the way) and settles. */
  async tick(ms: number): Promise<void> {
    await this.clock.advance(ms);
    await this.settle();
  }

  /**
   * Advances in steps of `step` ms, letting the work started on the way run after each step
   * (provider calls may stay in flight across steps, as with real latency).
   */
  async run(ms: number, step = 1_000): Promise<void> {
    const end = this.clock.nowMs() + ms;
    while (this.clock.nowMs() < end) {
      await this.clock.advanceTo(Math.min(end, this.clock.nowMs() + step));
      await this.reconciler.quiescent();
    }
  }

  /**
   * Like run(), reporting health at each step for every running instance except those listed
   * (or those `except` returns true for).
   */
  async runHealthy(ms: number, step = 10_000, except: readonly string[] | ((i: InstanceRecord) => boolean) = []): Promise<void> {
    const end = this.clock.nowMs() + ms;
    const report = (): void => {
      for (const i of this.db.listInstances()) {
        if (i.status !== 'running' && i.status !== 'draining') continue;
        if (typeof except === 'function' ? except(i) : except.includes(i.id)) continue;
        this.db.recordHealth(i.id, this.clock.now());
      }
    };
    while (this.clock.nowMs() < end) {
      report();
      await this.clock.advanceTo(Math.min(end, this.clock.nowMs() + step));
      await this.reconciler.quiescent();
    }
    report();
    await this.reconciler.quiescent();
  }

  /** Simulates a crash: the reconciler is abandoned mid-flight and a new one starts on the same database file. */
  async crashAndRestart(): Promise<void> {
    await this.crash();
    await this.restart();
  }

  /** The reconciler dies mid-flight (its late callbacks do nothing). */
  async crash(): Promise<void> {
    await this.reconciler.stop({ abandon: true });
  }

  /** A new reconciler starts on the same database file. */
  async restart(): Promise<void> {
    this.db.close();
    this.db = openLocalDb(this.dbPath);
    this.reconciler = this.build();
    await this.reconciler.start();
    await this.reconciler.quiescent();
    if (!this.options.sim?.createLatencyMs && !this.options.sim?.deleteLatencyMs) await this.settle();
  }

  live(tenant = 'default', group = 'web'): InstanceRecord[] {
    return this.db.listInstances({ tenant, group });
  }

  byStatus(status: InstanceRecord['status'], tenant = 'default', group = 'web'): InstanceRecord[] {
    return this.live(tenant, group).filter((i) => i.status === status);
  }

  /** Reports health now for every running or draining instance (of a group, or all). */
  reportHealthy(filter: { tenant?: string; group?: string; except?: readonly string[] } = {}): void {
    for (const i of this.db.listInstances({ tenant: filter.tenant, group: filter.group })) {
      if ((i.status === 'running' || i.status === 'draining') && !filter.except?.includes(i.id)) this.db.recordHealth(i.id, this.clock.now());
    }
  }

  /** Cloud instances tagged for a group. */
  cloud(group = 'web', tenant = 'default'): ReturnType<SimProvider['instances']> {
    return this.provider.instances().filter((i) => i.tags['drover:group'] === group && i.tags['drover:tenant'] === tenant);
  }

  async close(): Promise<void> {
    await this.reconciler.stop({ abandon: true });
    this.db.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function configWith(groups: Record<string, Record<string, Record<string, unknown>>>, shard: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...BASE_CONFIG, ...extra, shard: { ...BASE_CONFIG.shard, ...shard }, groups };
}
