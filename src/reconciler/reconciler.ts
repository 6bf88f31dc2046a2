/**
 * Reconciler: keeps every group at its desired size from one event queue, acting only while this
 * server is the shard leader. Events record facts and mark a group; `planGroup` decides; the
 * Executor applies. See docs/architecture.md for the flow.
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { SystemClock, type Clock, type TimerHandle } from '../clock/index.js';
import { configuredGroups, groupSettings, type ConfigLoader, type DroverConfig, type GroupSettings } from '../config/index.js';
import { PermanentError, errorMessage, isRetryable } from '../errors/index.js';
import type { InstanceManager } from '../instances/index.js';
import type { Provider } from '../providers/index.js';
import { CallGate } from '../queue/call-gate.js';
import { Priority } from '../queue/priority.js';
import { KeyedWorkQueue, type QueueObserver } from '../queue/work-queue.js';
import type { LocalDb } from '../store/index.js';
import { randomHex } from '../util/random.js';
import { backoffDelay } from './backoff.js';
import type { Context, ReconcilerObserver } from './context.js';
import { EVENT_TYPES, EventType, describeEvent, eventPriority, groupKeyOf, splitGroupKey, type GroupEvent, type QueuedEvent, type ReconcileEvent } from './events.js';
import { Executor, checkEvent } from './executor.js';
import { FactRecorder } from './facts.js';
import { trackBrake, trackRemoval } from './group-facts.js';
import { TimerKey } from './keys.js';
import type { Block, Plan } from './plan.js';
import { PlanInputs } from './plan-inputs.js';
import type { ReconcilerStore } from './ports.js';
import type { Logger } from '../logging/index.js';
import { LocalOperatorState, keys, type OperatorState, type SizeOverride } from '../state/index.js';
import { OperatorActions } from './operator-actions.js';
import { syncWithProvider } from './sync.js';
import { DurableTimers } from './timers.js';

export interface ReconcilerOptions {
  instanceManager: InstanceManager;
  configLoader: ConfigLoader;
  localDb: LocalDb;
  provider: Provider;
  /** Called when a drain starts: tell the instance (and the operator) to finish its work by `deleteAt`. */
  notifyDrain: (instanceId: string, group: string, reason: string, unhealthyAt: Date, deleteAt: Date) => void;
  /** Called for every error a handler or provider call meets (`group` is "tenant/group"). */
  notifyError?: (group: string, instanceId: string, errMsg: string) => void;
  /** True while this server is the shard leader. Checked before every mutation. */
  isLeader: () => boolean;
  /** Minimum gap between creates, shard-wide (overrides `shard.createRateLimit`). */
  createRateLimitMs?: number;
  /** pino or anything with the same methods. Default: silent. */
  logger?: Logger;
  clock?: Clock;
  /** Random source for ids and jitter (the simulator passes a seeded one). */
  random?: () => number;
  /** Leadership epoch recorded in the audit (HA mode). */
  epoch?: () => number | null;
  /** Metrics hooks. */
  observer?: ReconcilerObserver & { queue?: QueueObserver };
  /** Timeout of a CheckInstance status call (default 5 s). */
  statusTimeoutMs?: number;
  /** Enqueue InitialReconcile when started (default true). */
  initialReconcileOnStart?: boolean;
  /** Operator decisions (API sizes, protection); default: kept in `localDb`. */
  operatorState?: OperatorState;
  /** Called when an operator cancels a drain (tell the instance's agent). */
  notifyDrainCancelled?: (instanceId: string) => void;
  /**
   * A group's instances reporting their first health replan it at most once per this many ms
   * (the first at once, the rest of the window in one replan at its end). Default 0: every first
   * report replans at once. A plan reads the whole group, so a big group booting at once (2,000
   * first reports within seconds) would otherwise be planned once per report. The server sets it.
   */
  firstHealthReplanIntervalMs?: number;
}

const REQUIRED: ReadonlyArray<keyof ReconcilerOptions> = ['instanceManager', 'configLoader', 'localDb', 'provider', 'notifyDrain', 'isLeader'];

/** Key for duplicate suppression: (type, tenant, group, instance). */
function duplicateKey(e: ReconcileEvent): string {
  return `${e.type}|${e.tenant ?? ''}|${e.groupKey ?? ''}|${e.instanceId ?? ''}`;
}

/** Merges an event into a queued one with the same coalescing key. */
function mergeEvents<E extends QueuedEvent>(queued: E, incoming: E): E {
  const merged: E = { ...queued, attempt: Math.max(queued.attempt ?? 0, incoming.attempt ?? 0) };
  if (queued.type === EventType.TerminationNotice) {
    // The earliest termination time wins.
    const a = queued.timestamp?.getTime() ?? Number.POSITIVE_INFINITY;
    const b = incoming.timestamp?.getTime() ?? Number.POSITIVE_INFINITY;
    if (b < a) merged.timestamp = incoming.timestamp;
  } else if (queued.type === EventType.GroupChanged) {
    // Keep every reason the group was looked at, for the audit ("config+healthy").
    const causes = new Set([...(queued.cause ?? '').split('+'), ...(incoming.cause ?? '').split('+')].filter((c) => c !== ''));
    if (causes.size > 0) merged.cause = [...causes].slice(0, 6).join('+');
  } else if (incoming.cause === 'disconnect' || queued.cause === undefined) {
    merged.cause = incoming.cause;
    merged.timestamp = incoming.timestamp ?? queued.timestamp;
  }
  return merged;
}

export class Reconciler {
  private readonly opts: ReconcilerOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly store: ReconcilerStore;
  /** Operator decisions (sizes set through the API, protection, holds). */
  readonly operatorState: OperatorState;
  /** Operator and workload actions on instances: drain, extend, cancel, force, protect. */
  readonly operator: OperatorActions;
  private readonly random: () => number;
  private readonly queue: KeyedWorkQueue<QueuedEvent>;
  private readonly gate: CallGate;
  private readonly timers: DurableTimers;
  private readonly executor: Executor;
  private readonly facts: FactRecorder;
  private readonly inputs: PlanInputs;
  private readonly ctx: Context;
  private readonly inFlight = new Map<string, 'create' | 'delete'>();
  private readonly lastProcessed = new Map<string, number>();
  private readonly lastPlans = new Map<string, Plan>();
  /** Per group: since when (ms) each block of its applied plans has stood. */
  private readonly blockSince = new Map<string, Map<string, number>>();
  private readonly unsubscribe: Array<() => void> = [];
  /** Per group: the window in which further first health reports wait (firstHealthReplanIntervalMs). */
  private readonly firstHealthWindows = new Map<string, { timer: TimerHandle; more: boolean }>();
  private observingSince: number;
  private state: 'new' | 'running' | 'stopped' = 'new';
  private halted = false;

  constructor(options: ReconcilerOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('Reconciler: options are required');
    for (const name of REQUIRED) {
      if (options[name] === undefined || options[name] === null) throw new TypeError(`Reconciler: option "${name}" is required`);
    }
    for (const name of ['notifyDrain', 'isLeader'] as const) {
      if (typeof options[name] !== 'function') throw new TypeError(`Reconciler: option "${name}" must be a function`);
    }
    this.opts = options;
    this.clock = options.clock ?? new SystemClock();
    this.log = options.logger ?? pino({ level: 'silent' });
    this.store = options.localDb;
    this.operatorState = options.operatorState ?? new LocalOperatorState(options.localDb, () => this.clock.now());
    const random = options.random;
    this.random = random ?? Math.random;
    this.observingSince = this.clock.nowMs();
    const config = options.configLoader.getCurrent();
    this.gate = new CallGate({
      clock: this.clock,
      maxCallsPerSecond: config.provider?.maxCallsPerSecond ?? 0,
      maxConcurrent: config.provider?.maxConcurrentCalls ?? 64,
      createGapMs: options.createRateLimitMs ?? config.shard.createRateLimit,
    });
    this.timers = new DurableTimers(this.store, this.clock, (event) => this.enqueue({ ...event, preventDuplicate: false }));
    this.queue = new KeyedWorkQueue<QueuedEvent>({
      concurrency: config.shard.workers,
      handler: (key, events) => this.handleGroup(key, events),
      barrierHandler: (events) => this.handleInitialReconcile(events),
      merge: mergeEvents,
      onError: (key, err) => this.log.error({ group: key, err: errorMessage(err) }, 'queue handler failed'),
      now: () => this.clock.nowMs(),
      observer: options.observer?.queue,
    });
    this.ctx = {
      clock: this.clock,
      log: this.log,
      store: this.store,
      provider: options.provider,
      instanceManager: options.instanceManager,
      configLoader: options.configLoader,
      gate: this.gate,
      timers: this.timers,
      observer: options.observer ?? {},
      random: this.random,
      inFlight: this.inFlight,
      leader: () => this.isLeaderNow(),
      epoch: () => options.epoch?.() ?? null,
      halted: () => this.halted,
      markDirty: (tenant, group, cause, priority) => this.markDirty(tenant, group, cause, priority),
      notifyDrain: (...args) => this.safeNotifyDrain(...args),
      notifyError: (group, instanceId, message) => this.safeNotifyError(group, instanceId, message),
      settings: (tenant, group) => this.effectiveSettings(this.opts.configLoader.getCurrent(), tenant, group),
      operatorState: () => this.operatorState,
      newInstanceId: () => `i-${random ? randomHex(random, 16) : randomBytes(8).toString('hex')}`,
      callTimeoutMs: () => this.opts.configLoader.getCurrent().provider?.callTimeout ?? 60_000,
      maxAttempts: () => this.opts.configLoader.getCurrent().shard.maxAttempts,
    };
    this.executor = new Executor(this.ctx);
    this.facts = new FactRecorder(this.ctx, options.statusTimeoutMs ?? 5_000);
    this.inputs = new PlanInputs({
      ctx: this.ctx,
      effectiveSettings: (config, tenant, group) => this.effectiveSettings(config, tenant, group),
      observingSince: () => this.observingSince,
    });
    this.operator = new OperatorActions({
      ctx: this.ctx,
      plan: (tenant, group) => this.plan(tenant, group),
      notifyDrainCancelled: (instanceId) => options.notifyDrainCancelled?.(instanceId),
    });
    this.executor.enqueueCheck = (tenant, group, instanceId, cause) => {
      // A check that failed is retried by its own timer, with backoff. Asking again at once would
      // spin: the plan keeps wanting the check until one succeeds (a throttled or failing provider).
      if (this.timers.has(TimerKey.retry(EventType.CheckInstance, groupKeyOf(tenant, group), instanceId))) return;
      this.enqueue(checkEvent(tenant, group, instanceId, cause));
    };
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  /**
   * Starts processing: restores durable timers, follows config and health changes, and (unless
   * `initialReconcileOnStart` is false) enqueues InitialReconcile.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`starting the reconciler: it is already ${this.state}`);
    this.state = 'running';
    this.observingSince = this.clock.nowMs();
    const restored = this.timers.load();
    this.unsubscribe.push(this.opts.configLoader.onChange((next, prev) => this.onConfigChange(next, prev)));
    this.unsubscribe.push(
      this.store.subscribe((change) => {
        if (change.kind === 'firstHealth') this.onFirstHealth(change.tenant, change.group);
      }),
    );
    this.log.info({ restoredTimers: restored }, 'reconciler started');
    if (this.opts.initialReconcileOnStart !== false) this.enqueue({ type: EventType.InitialReconcile, cause: 'start' });
  }

  /**
   * Stops processing. By default waits for running handlers and provider calls to finish.
   * `{ abandon: true }` stops at once and ignores every late result, as a crash would (for tests
   * and the simulator); the store keeps whatever had been written.
   */
  async stop(options: { abandon?: boolean } = {}): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    for (const off of this.unsubscribe.splice(0)) off();
    for (const w of this.firstHealthWindows.values()) w.timer.cancel();
    this.firstHealthWindows.clear();
    this.timers.stop();
    this.queue.pause();
    this.queue.clear();
    if (options.abandon) {
      this.halted = true;
      return;
    }
    await this.queue.idle();
    await this.gate.idle();
    this.halted = true;
    this.log.info({}, 'reconciler stopped');
  }

  /**
   * Adds an event. Never blocks, never throws, never drops a valid event: events coalesce per
   * group and instance. Invalid events are logged and reported through notifyError.
   */
  enqueue(event: ReconcileEvent): void {
    try {
      this.enqueueUnsafe(event);
    } catch (err) {
      this.log.error({ event: describeEventSafe(event), err: errorMessage(err) }, 'enqueue failed');
    }
  }

  /**
   * Resolves when nothing is queued, due or in flight: no event waits, no timer is due, no
   * provider call is running. Calls waiting for a future rate-limit slot are not due yet.
   */
  async idle(): Promise<void> {
    for (;;) {
      await this.queue.idle();
      await this.gate.idle();
      if (this.queue.isIdle() && this.gate.isIdle() && !this.timers.hasDue()) return;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /**
   * Resolves when no event is queued or being handled and no timer is due. Unlike `idle()`, it
   * does not wait for provider calls in flight — for drivers of a manual clock (tests, the
   * simulator), whose provider calls finish only when the clock is moved.
   */
  async quiescent(): Promise<void> {
    for (;;) {
      await this.queue.idle();
      if (this.queue.isIdle() && !this.timers.hasDue() && !this.gate.hasDueWork()) return;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /**
   * What the reconciler would do for a group now, with reasons. No side effects.
   * `options.size` plans as if the group had that size (a preview before scaling).
   */
  plan(tenant: string, groupKey: string, options: { size?: number } = {}): Plan {
    const config = this.opts.configLoader.getCurrent();
    return this.explain(this.inputs.computePlan(config, tenant, groupKey, options.size));
  }

  /** Plans of every known group (configured or with live instances), no side effects. */
  planAll(): Plan[] {
    const config = this.opts.configLoader.getCurrent();
    return this.knownGroups(config).map(({ tenant, group }) => this.explain(this.inputs.computePlan(config, tenant, group)));
  }

  /**
   * Adds what the pure plan cannot know: leadership, creates waiting for the rate limit, and
   * since when each block has stood (from the plans applied so far).
   */
  private explain(plan: Plan): Plan {
    const key = groupKeyOf(plan.tenant, plan.group);
    const blocked = [...plan.blocked];
    if (!this.isLeaderNow()) blocked.unshift({ code: 'NotLeader', message: 'this server is not the shard leader: it plans, the leader acts' });
    const waiting = this.executor.waitingCreates(key);
    if (waiting > 0) {
      const next = this.gate.nextCreateAt();
      blocked.push({
        code: 'RateLimited',
        message: `${waiting} create(s) wait for the provider's rate limit${next !== null && next > this.clock.nowMs() ? ` (next create slot ${new Date(next).toISOString()})` : ''}`,
      });
    }
    const since = this.blockSince.get(key);
    return {
      ...plan,
      blocked: blocked.map((b) => {
        const at = since?.get(blockKey(b));
        return at !== undefined && b.since === undefined ? { ...b, since: new Date(at) } : b;
      }),
    };
  }

  /** Remembers when each block of an applied plan first appeared. */
  private trackBlocks(key: string, plan: Plan): void {
    const previous = this.blockSince.get(key);
    const next = new Map<string, number>();
    for (const b of plan.blocked) {
      const k = blockKey(b);
      next.set(k, previous?.get(k) ?? this.clock.nowMs());
    }
    if (next.size > 0) this.blockSince.set(key, next);
    else this.blockSince.delete(key);
  }

  /** The last plan applied for a group (for "why blocked"), if any. */
  lastPlan(tenant: string, group: string): Plan | undefined {
    return this.lastPlans.get(groupKeyOf(tenant, group));
  }

  /** Queue and provider-call figures for metrics. */
  stats(): {
    queueDepth: number;
    queueActive: number;
    oldestWaitMs: number;
    runningSinceMs: number[];
    providerWaiting: number;
    providerInFlight: number;
    timers: number;
  } {
    const gate = this.gate.stats();
    return {
      queueDepth: this.queue.depth,
      queueActive: this.queue.active,
      oldestWaitMs: this.queue.oldestWaitMs(),
      runningSinceMs: this.queue.runningSince(),
      providerWaiting: gate.waiting,
      providerInFlight: gate.inFlight,
      timers: this.timers.size,
    };
  }

  /** Effective settings of a group: config, with the operator's size while it stands. */
  effectiveSettings(config: DroverConfig, tenant: string, group: string): GroupSettings | null {
    const settings = groupSettings(config, tenant, group);
    if (!settings) return null;
    const override = this.operatorState.get<SizeOverride>(keys.size(tenant, group));
    if (override && override.base === settings.size) return { ...settings, size: override.size };
    return settings;
  }

  // ---- event intake --------------------------------------------------------------------------

  private enqueueUnsafe(event: ReconcileEvent): void {
    if (this.state === 'stopped') return;
    if (!event || !EVENT_TYPES.includes(event.type)) {
      this.log.warn({ event: describeEventSafe(event) }, 'unknown event type ignored');
      this.safeNotifyError('', event?.instanceId ?? '', `enqueue: unknown event type ${JSON.stringify(event?.type)}`);
      return;
    }
    if (event.type === EventType.InitialReconcile) {
      this.queue.addBarrier('initial', { ...event, type: EventType.InitialReconcile });
      return;
    }
    let tenant = event.tenant;
    let group = event.groupKey;
    if ((tenant === undefined || group === undefined) && event.instanceId) {
      const record = this.store.getInstance(event.instanceId);
      if (record) {
        tenant ??= record.tenant;
        group ??= record.group;
      }
    }
    if (tenant === undefined || group === undefined) {
      this.log.warn({ event: describeEvent(event), instanceId: event.instanceId }, 'event names no known group; ignored');
      this.safeNotifyError('', event.instanceId ?? '', `${describeEvent(event)}: event names no tenant and group, and its instance is unknown`);
      return;
    }
    const full = routed(event, tenant, group);
    if (full === null) {
      this.safeNotifyError(groupKeyOf(tenant, group), '', `${describeEvent(event)}: event needs an instanceId`);
      return;
    }
    if (full.preventDuplicate) {
      const last = this.lastProcessed.get(duplicateKey(full));
      const window = 2 * this.opts.configLoader.getCurrent().shard.healthCheckInterval;
      if (last !== undefined && this.clock.nowMs() - last < window) {
        this.log.debug({ event: describeEvent(full), tenant, group, instanceId: full.instanceId }, 'duplicate event skipped');
        return;
      }
    }
    const coalesce = full.type === EventType.GroupChanged ? 'group' : `${full.type}|${full.instanceId}`;
    this.queue.add(groupKeyOf(tenant, group), coalesce, full, eventPriority(full));
  }

  /** An instance reported health for the first time: replan its group, at most once per window. */
  private onFirstHealth(tenant: string, group: string): void {
    const intervalMs = this.opts.firstHealthReplanIntervalMs ?? 0;
    if (intervalMs <= 0) {
      this.markDirty(tenant, group, 'healthy', Priority.normal);
      return;
    }
    const key = groupKeyOf(tenant, group);
    const open = this.firstHealthWindows.get(key);
    if (open) {
      open.more = true;
      return;
    }
    this.markDirty(tenant, group, 'healthy', Priority.normal);
    const window = {
      more: false,
      timer: this.clock.schedule(this.clock.nowMs() + intervalMs, () => {
        this.firstHealthWindows.delete(key);
        if (window.more) this.onFirstHealth(tenant, group);
      }),
    };
    this.firstHealthWindows.set(key, window);
  }

  private markDirty(tenant: string, group: string, cause: string, priority: Priority): void {
    if (this.state === 'stopped') return;
    this.queue.add(groupKeyOf(tenant, group), 'group', { type: EventType.GroupChanged, tenant, groupKey: group, cause }, priority);
  }

  private markProcessed(event: ReconcileEvent): void {
    const now = this.clock.nowMs();
    this.lastProcessed.set(duplicateKey(event), now);
    if (this.lastProcessed.size > 50_000) {
      const window = 2 * this.opts.configLoader.getCurrent().shard.healthCheckInterval;
      for (const [key, at] of this.lastProcessed) if (now - at >= window) this.lastProcessed.delete(key);
    }
  }

  // ---- handlers ------------------------------------------------------------------------------

  private async handleGroup(key: string, queued: QueuedEvent[]): Promise<void> {
    if (this.halted) return;
    const started = this.clock.nowMs();
    const { tenant, group } = splitGroupKey(key);
    // A group's queue holds only its own events (intake routes them); the barrier has its own handler.
    const events = queued.filter((e): e is GroupEvent => e.type !== EventType.InitialReconcile);
    events.sort((a, b) => eventPriority(a) - eventPriority(b));
    for (const event of events) {
      this.markProcessed(event);
      try {
        await this.facts.record(event);
      } catch (err) {
        this.handleFailure(tenant, group, event, err);
      }
      if (this.halted) return;
    }
    if (!this.isLeaderNow()) {
      this.opts.observer?.reconciled?.('skipped', this.clock.nowMs() - started);
      this.log.debug({ tenant, group }, 'not the leader; group not reconciled');
      return;
    }
    try {
      const config = this.opts.configLoader.getCurrent();
      trackRemoval(this.ctx, config, tenant, group, events);
      const plan = this.inputs.computePlan(config, tenant, group);
      trackBrake(this.ctx, plan, events);
      this.executor.apply(plan, events);
      this.lastPlans.set(key, plan);
      this.trackBlocks(key, plan);
      if (plan.wakeAt) this.timers.set(TimerKey.wake(key), plan.wakeAt.getTime(), { type: EventType.GroupChanged, tenant, groupKey: group, cause: 'timer' });
      else this.timers.clear(TimerKey.wake(key));
      // Forgetting vanished instances changes what the next plan counts (the health brake counts
      // them as unhealthy in the plan that forgets them): plan again, or a brake they tripped would
      // hold until something else happened in the group.
      if (plan.actions.some((a) => a.kind === 'forget') && plan.summary.disruption.shortCircuited) this.markDirty(tenant, group, 'forgotten', Priority.high);
      this.opts.observer?.reconciled?.('ok', this.clock.nowMs() - started);
    } catch (err) {
      this.opts.observer?.reconciled?.('error', this.clock.nowMs() - started);
      const attempt = Math.max(0, ...events.map((e) => e.attempt ?? 0));
      this.handleFailure(tenant, group, { type: EventType.GroupChanged, tenant, groupKey: group, cause: 'retry', attempt }, err);
    }
  }

  private async handleInitialReconcile(events: ReconcileEvent[]): Promise<void> {
    if (this.halted) return;
    if (!this.isLeaderNow()) {
      this.log.info({}, 'not the leader; initial reconcile skipped');
      return;
    }
    const config = this.opts.configLoader.getCurrent();
    const periodicOnly = events.every((e) => e.cause === 'resync');
    if (!periodicOnly) {
      // A fresh start or leadership win: try again what was given up.
      this.store.clearCreateHolds();
      for (const row of this.store.listInstances({ status: 'deleting' })) {
        if (row.attempts >= config.shard.maxAttempts) this.store.updateInstance(row.id, { attempts: 0, nextAttemptAt: null });
      }
    }
    if (events.some((e) => e.cause === 'leader')) {
      // A leadership win: agents connected to the previous leader get one full health threshold
      // to reconnect here before their silence counts.
      this.observingSince = this.clock.nowMs();
    }
    const started = this.clock.nowMs();
    let touched: Set<string> | null = null;
    try {
      // A start or a win takes drains from the provider's tags (rows may be stale from an earlier term).
      const result = await syncWithProvider(this.ctx, config.shard.id, { fromTags: !periodicOnly });
      touched = result.touched;
      const { touched: _groups, ...figures } = result;
      this.log.info({ ...figures, ms: this.clock.nowMs() - started }, 'provider sync done');
    } catch (err) {
      const attempt = Math.max(0, ...events.map((e) => e.attempt ?? 0));
      this.handleFailure('', '', { type: EventType.InitialReconcile, cause: events[0]?.cause ?? 'start', attempt }, err);
    }
    if (this.halted) return;
    // A start or leadership win looks at every group; a periodic resync only at what it changed
    // (everything else is already driven by each group's own timers).
    for (const { tenant, group } of this.knownGroups(config)) {
      if (periodicOnly && touched && !touched.has(groupKeyOf(tenant, group))) continue;
      this.markDirty(tenant, group, periodicOnly ? 'resync' : 'initial', Priority.bulk);
    }
    if (config.shard.resyncInterval > 0) {
      this.timers.set(TimerKey.resync, this.clock.nowMs() + config.shard.resyncInterval, { type: EventType.InitialReconcile, cause: 'resync' });
    }
  }

  private knownGroups(config: DroverConfig): Array<{ tenant: string; group: string }> {
    const seen = new Set<string>();
    const out: Array<{ tenant: string; group: string }> = [];
    for (const g of [...configuredGroups(config), ...this.store.groupsWithLiveInstances()]) {
      const key = groupKeyOf(g.tenant, g.group);
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(g);
    }
    return out;
  }

  /** Reports a failed handler and schedules its retry (backoff with jitter) unless it is permanent or out of attempts. */
  private handleFailure(tenant: string, group: string, event: ReconcileEvent, err: unknown): void {
    const key = tenant ? groupKeyOf(tenant, group) : '';
    const message = errorMessage(err);
    const attempt = (event.attempt ?? 0) + 1;
    const maxAttempts = this.opts.configLoader.getCurrent().shard.maxAttempts;
    const retryable = isRetryable(err) && !(err instanceof PermanentError);
    this.log.warn({ group: key, instanceId: event.instanceId, event: describeEvent(event), err: message, attempt, retryable }, 'event handling failed');
    if (!retryable) {
      this.safeNotifyError(key, event.instanceId ?? '', `${describeEvent(event)}: ${message} (permanent, not retried)`);
      return;
    }
    if (attempt >= maxAttempts) {
      this.safeNotifyError(key, event.instanceId ?? '', `${describeEvent(event)}: ${message} (gave up after ${attempt} attempts)`);
      return;
    }
    this.safeNotifyError(key, event.instanceId ?? '', `${describeEvent(event)}: ${message}`);
    this.opts.observer?.retried?.();
    const due = this.clock.nowMs() + backoffDelay(attempt, this.random);
    this.timers.set(TimerKey.retry(event.type, key, event.instanceId), due, { ...event, attempt, preventDuplicate: false });
  }

  // ---- collaborators -------------------------------------------------------------------------

  private onConfigChange(next: DroverConfig, prev: DroverConfig): void {
    this.gate.configure({
      maxCallsPerSecond: next.provider?.maxCallsPerSecond ?? 0,
      maxConcurrent: next.provider?.maxConcurrentCalls ?? 64,
      createGapMs: this.opts.createRateLimitMs ?? next.shard.createRateLimit,
    });
    const shardChanged = JSON.stringify(next.shard) !== JSON.stringify(prev.shard);
    const keys = new Map<string, { tenant: string; group: string }>();
    for (const g of [...configuredGroups(prev), ...configuredGroups(next)]) keys.set(groupKeyOf(g.tenant, g.group), g);
    let changed = 0;
    for (const { tenant, group } of keys.values()) {
      const before = JSON.stringify(groupSettings(prev, tenant, group));
      const after = JSON.stringify(groupSettings(next, tenant, group));
      if (shardChanged || before !== after) {
        changed++;
        this.markDirty(tenant, group, 'config', Priority.normal);
      }
    }
    this.log.info({ changedGroups: changed }, 'config reloaded');
  }

  private isLeaderNow(): boolean {
    if (this.halted) return false;
    try {
      return this.opts.isLeader() === true;
    } catch {
      return false;
    }
  }

  private safeNotifyDrain(instanceId: string, group: string, reason: string, unhealthyAt: Date, deleteAt: Date): void {
    try {
      this.opts.notifyDrain(instanceId, group, reason, unhealthyAt, deleteAt);
    } catch (err) {
      this.log.warn({ instanceId, group, err: errorMessage(err) }, 'notifyDrain threw');
    }
  }

  private safeNotifyError(group: string, instanceId: string, message: string): void {
    try {
      this.opts.notifyError?.(group, instanceId, message);
    } catch (err) {
      this.log.warn({ instanceId, group, err: errorMessage(err) }, 'notifyError threw');
    }
  }
}

function blockKey(b: Block): string {
  return `${b.code}|${b.instanceId ?? ''}`;
}

function describeEventSafe(event: unknown): string {
  try {
    return JSON.stringify(event);
  } catch {
    return String(event);
  }
}

/** The event as intake completes it (tenant and group known), or null when it lacks its instance. */
function routed(event: ReconcileEvent, tenant: string, groupKey: string): GroupEvent | null {
  if (event.type === EventType.GroupChanged) return { ...event, type: event.type, tenant, groupKey };
  if (event.type === EventType.InitialReconcile || !event.instanceId) return null;
  return { ...event, type: event.type, tenant, groupKey, instanceId: event.instanceId };
}
