/**
 * SimProvider: an in-process cloud for tests, the simulator and benchmarks. It keeps instances
 * in memory, answers after configurable latencies measured on the injected clock, enforces a
 * token-bucket API rate limit like a real cloud, honours idempotency keys, and exposes fault
 * controls (failed, slow and throttled calls; instances that stop, crash or vanish).
 * It is never used in place of a real provider in a running server unless asked for
 * (`provider.kind: sim`).
 */
import type { Clock } from '../../clock/index.js';
import { InstanceNotFoundError, PermanentError, ProviderError, ThrottledError } from '../../errors/index.js';
import { TAG, type Provider, type ProviderCreateRequest, type ProviderInstance, type ProviderStatus } from '../types.js';

export type SimOperation = 'create' | 'delete' | 'status' | 'list' | 'setTags';

export interface SimProviderOptions {
  clock: Clock;
  createLatencyMs?: number;
  deleteLatencyMs?: number;
  statusLatencyMs?: number;
  listLatencyMs?: number;
  /** API rate limit over all calls (token bucket); 0 or absent = unlimited. */
  maxCallsPerSecond?: number;
  /** Bucket size for the rate limit (default: a twentieth of a second's worth, at least 2). */
  burst?: number;
  /** Seed for the instance ids it hands out. */
  seed?: number;
  /**
   * What the ids it hands out begin with, before a six-digit counter (default `sim-<seed>-`). A
   * run of digits such as `4711` gives ids of digits only, like Hetzner Cloud's (`4711000001`).
   */
  idPrefix?: string;
}

export interface SimInstance {
  providerId: string;
  status: ProviderStatus;
  tags: Record<string, string>;
  idempotencyKey: string;
  createdAt: Date;
}

export interface SimCall {
  op: SimOperation;
  at: number;
  providerId?: string;
  idempotencyKey?: string;
  outcome: 'ok' | 'error' | 'throttled';
}

interface PlannedFault {
  ops: ReadonlySet<SimOperation>;
  remaining: number;
  kind: 'fail' | 'throttle' | 'slow';
  permanent: boolean;
  delayMs: number;
}

/** A twentieth of a second's worth of calls, at least 2. */
function defaultBurst(callsPerSecond: number): number {
  return Math.max(2, Math.ceil(callsPerSecond / 20));
}

export class SimProvider implements Provider {
  readonly kind = 'sim';
  private readonly clock: Clock;
  private readonly byId = new Map<string, SimInstance>();
  private readonly byKey = new Map<string, SimInstance>();
  private readonly gone = new Map<string, SimInstance>();
  private readonly faults: PlannedFault[] = [];
  private readonly callListeners = new Set<(call: SimCall) => void>();
  private nextId = 1;
  private readonly idPrefix: string;
  private tokens: number;
  private lastRefill: number;
  private latency: Record<'create' | 'delete' | 'status' | 'list', number>;
  private rate: number;
  private burst: number;
  /** Counts of calls by operation and outcome. */
  readonly stats = { create: 0, delete: 0, status: 0, list: 0, setTags: 0, throttled: 0, failed: 0 };

  constructor(options: SimProviderOptions) {
    this.clock = options.clock;
    this.latency = {
      create: options.createLatencyMs ?? 0,
      delete: options.deleteLatencyMs ?? 0,
      status: options.statusLatencyMs ?? 0,
      list: options.listLatencyMs ?? 0,
    };
    this.rate = options.maxCallsPerSecond ?? 0;
    this.burst = options.burst ?? defaultBurst(this.rate);
    this.tokens = this.burst;
    this.lastRefill = this.clock.nowMs();
    this.idPrefix = options.idPrefix ?? `sim-${((options.seed ?? 0) >>> 0).toString(36)}-`;
  }

  // ---- the Provider API ------------------------------------------------------------------

  async create(req: ProviderCreateRequest): Promise<ProviderInstance> {
    this.admit('create', { idempotencyKey: req.idempotencyKey });
    const fault = this.takeFault('create');
    if (fault && fault.kind !== 'slow') this.fail('create', fault, { idempotencyKey: req.idempotencyKey });
    let instance = this.byKey.get(req.idempotencyKey);
    if (!instance) {
      instance = {
        providerId: `${this.idPrefix}${String(this.nextId++).padStart(6, '0')}`,
        status: 'pending',
        tags: { ...req.tags },
        idempotencyKey: req.idempotencyKey,
        createdAt: this.clock.now(),
      };
      this.byKey.set(req.idempotencyKey, instance);
      this.byId.set(instance.providerId, instance);
    }
    await this.wait(this.latency.create + (fault?.kind === 'slow' ? fault.delayMs : 0));
    if (instance.status === 'pending') instance.status = 'running';
    this.record({ op: 'create', providerId: instance.providerId, idempotencyKey: req.idempotencyKey, outcome: 'ok' });
    return this.view(instance);
  }

  async delete(providerId: string): Promise<void> {
    this.admit('delete', { providerId });
    const fault = this.takeFault('delete');
    if (fault && fault.kind !== 'slow') this.fail('delete', fault, { providerId });
    const instance = this.byId.get(providerId);
    if (!instance) {
      this.record({ op: 'delete', providerId, outcome: 'error' });
      throw new InstanceNotFoundError(providerId);
    }
    await this.wait(this.latency.delete + (fault?.kind === 'slow' ? fault.delayMs : 0));
    this.remove(instance);
    this.record({ op: 'delete', providerId, outcome: 'ok' });
  }

  async status(providerId: string): Promise<ProviderStatus> {
    this.admit('status', { providerId });
    const fault = this.takeFault('status');
    if (fault && fault.kind !== 'slow') this.fail('status', fault, { providerId });
    await this.wait(this.latency.status + (fault?.kind === 'slow' ? fault.delayMs : 0));
    const instance = this.byId.get(providerId);
    if (!instance) {
      this.record({ op: 'status', providerId, outcome: 'error' });
      throw new InstanceNotFoundError(providerId);
    }
    this.record({ op: 'status', providerId, outcome: 'ok' });
    return instance.status;
  }

  async list(tags: Record<string, string>): Promise<ProviderInstance[]> {
    this.admit('list', {});
    const fault = this.takeFault('list');
    if (fault && fault.kind !== 'slow') this.fail('list', fault, {});
    await this.wait(this.latency.list + (fault?.kind === 'slow' ? fault.delayMs : 0));
    const wanted = Object.entries(tags);
    const out: ProviderInstance[] = [];
    for (const instance of this.byId.values()) {
      if (wanted.every(([k, v]) => instance.tags[k] === v)) out.push(this.view(instance));
    }
    this.record({ op: 'list', outcome: 'ok' });
    return out;
  }

  async setTags(providerId: string, tags: Record<string, string>): Promise<void> {
    this.admit('setTags', { providerId });
    const fault = this.takeFault('setTags');
    if (fault && fault.kind !== 'slow') this.fail('setTags', fault, { providerId });
    await this.wait(fault?.kind === 'slow' ? fault.delayMs : 0);
    const instance = this.byId.get(providerId);
    if (!instance) throw new InstanceNotFoundError(providerId);
    Object.assign(instance.tags, tags);
    this.record({ op: 'setTags', providerId, outcome: 'ok' });
  }

  // ---- inspection and fault controls -----------------------------------------------------

  /** What the cloud holds now. */
  instances(): SimInstance[] {
    return [...this.byId.values()].map((i) => ({ ...i, tags: { ...i.tags } }));
  }

  /** Looks an instance up by provider id or by the Drover instance id in its tags. */
  find(id: string): SimInstance | undefined {
    const direct = this.byId.get(id);
    if (direct) return direct;
    for (const instance of this.byId.values()) if (instance.tags[TAG.instanceId] === id) return instance;
    return undefined;
  }

  /** Changes an instance's status (e.g. `stopped` to simulate a crash). */
  setStatus(id: string, status: ProviderStatus): void {
    const instance = this.find(id);
    if (!instance) throw new InstanceNotFoundError(id);
    instance.status = status;
  }

  /** Deletes an instance behind Drover's back: later calls say it is not found. */
  vanish(id: string): void {
    const instance = this.find(id);
    if (!instance) throw new InstanceNotFoundError(id);
    this.remove(instance);
  }

  /** Puts an instance into the cloud directly (one Drover does not know about, or a restored one). */
  inject(instance: Omit<SimInstance, 'createdAt'> & { createdAt?: Date }): void {
    const full: SimInstance = { createdAt: this.clock.now(), ...instance, tags: { ...instance.tags } };
    this.byId.set(full.providerId, full);
    this.byKey.set(full.idempotencyKey, full);
  }

  /** The next `n` creates fail (retryable unless `permanent`). */
  failCreates(n: number, options: { permanent?: boolean } = {}): void {
    this.failNext('create', n, options);
  }

  /** The next `n` calls of `op` fail. */
  failNext(op: SimOperation | SimOperation[], n: number, options: { permanent?: boolean } = {}): void {
    this.faults.push({ ops: new Set(Array.isArray(op) ? op : [op]), remaining: n, kind: 'fail', permanent: options.permanent ?? false, delayMs: 0 });
  }

  /** The next `n` calls of `op` are refused with a ThrottledError, as if over the rate limit (without using it up). */
  throttleNext(op: SimOperation | SimOperation[], n: number): void {
    this.faults.push({ ops: new Set(Array.isArray(op) ? op : [op]), remaining: n, kind: 'throttle', permanent: false, delayMs: 0 });
  }

  /** The next `n` calls of `op` take `delayMs` longer than usual. */
  slowNext(op: SimOperation | SimOperation[], n: number, delayMs: number): void {
    this.faults.push({ ops: new Set(Array.isArray(op) ? op : [op]), remaining: n, kind: 'slow', permanent: false, delayMs });
  }

  /** Removes every planned fault. */
  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Changes latencies while running. */
  setLatency(latency: Partial<Record<'create' | 'delete' | 'status' | 'list', number>>): void {
    this.latency = { ...this.latency, ...latency };
  }

  /**
   * Changes the API rate limit from now on (0 = unlimited), as a cloud's quota is raised, cut or
   * lifted while callers run. Tokens earned before now are earned at the old rate; the bucket
   * keeps what it holds (capped at the new burst, which defaults as in the constructor), or starts
   * full when there was no limit before.
   */
  setRate(callsPerSecond: number, burst?: number): void {
    if (!(callsPerSecond >= 0) || (burst !== undefined && !(burst >= 1))) throw new RangeError(`sim provider rate ${callsPerSecond}/s, burst ${burst ?? 'default'}: a rate >= 0 and a burst >= 1`);
    const now = this.clock.nowMs();
    const limited = this.rate > 0;
    if (limited) this.refill(now);
    this.rate = callsPerSecond;
    this.burst = burst ?? defaultBurst(callsPerSecond);
    this.tokens = limited ? Math.min(this.burst, this.tokens) : this.burst;
    this.lastRefill = now;
  }

  /** Observes every call as it completes (benchmarks time calls with it). */
  onCall(listener: (call: SimCall) => void): () => void {
    this.callListeners.add(listener);
    return () => this.callListeners.delete(listener);
  }

  /** Observes every call as it arrives, before latency (benchmarks time call starts). */
  private readonly startListeners = new Set<(call: SimCall) => void>();
  onCallStart(listener: (call: SimCall) => void): () => void {
    this.startListeners.add(listener);
    return () => this.startListeners.delete(listener);
  }

  // ---- internals -------------------------------------------------------------------------

  private view(instance: SimInstance): ProviderInstance {
    return { providerId: instance.providerId, status: instance.status, tags: { ...instance.tags } };
  }

  private remove(instance: SimInstance): void {
    this.byId.delete(instance.providerId);
    instance.status = 'terminated';
    this.gone.set(instance.providerId, instance);
  }

  private admit(op: SimOperation, ids: { providerId?: string; idempotencyKey?: string }): void {
    const call: SimCall = { op, at: this.clock.nowMs(), outcome: 'ok', ...ids };
    for (const listener of this.startListeners) listener(call);
    if (this.rate <= 0) {
      this.stats[op]++;
      return;
    }
    this.refill(this.clock.nowMs());
    if (this.tokens < 1) {
      this.stats.throttled++;
      this.record({ ...call, outcome: 'throttled' });
      throw new ThrottledError(`sim provider ${op}`);
    }
    this.tokens -= 1;
    this.stats[op]++;
  }

  /** Adds the tokens earned at the current rate since the last refill. */
  private refill(now: number): void {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.lastRefill) * this.rate) / 1000);
    this.lastRefill = now;
  }

  private takeFault(op: SimOperation): PlannedFault | undefined {
    const index = this.faults.findIndex((f) => f.ops.has(op) && f.remaining > 0);
    if (index < 0) return undefined;
    const fault = this.faults[index];
    if (!fault) return undefined;
    fault.remaining--;
    if (fault.remaining <= 0) this.faults.splice(index, 1);
    return fault;
  }

  private fail(op: SimOperation, fault: PlannedFault, ids: { providerId?: string; idempotencyKey?: string }): never {
    if (fault.kind === 'throttle') {
      this.stats.throttled++;
      this.record({ op, outcome: 'throttled', ...ids });
      throw new ThrottledError(`sim provider ${op}`);
    }
    this.stats.failed++;
    this.record({ op, outcome: 'error', ...ids });
    const error = new ProviderError(`sim provider ${op}: injected failure`, { retryable: true });
    throw fault.permanent ? new PermanentError(error) : error;
  }

  private record(call: Omit<SimCall, 'at'>): void {
    if (this.callListeners.size === 0) return;
    const full = { ...call, at: this.clock.nowMs() };
    for (const listener of this.callListeners) listener(full);
  }

  private async wait(ms: number): Promise<void> {
    if (ms > 0) await this.clock.sleep(ms);
  }
}
