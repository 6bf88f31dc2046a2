/**
 * The autoscale loop: on the leader only, one timer per autoscaled group (every `interval` on the
 * injected clock), each tick one query and one decision (decide.ts), recorded in the operator
 * state where the size decision (src/reconciler/sizing.ts) reads it.
 *
 * Contracts:
 * - Only while this replica leads: timers are armed on a win (`setLeader(true)`, or `start()`
 *   when already leading) and cancelled on a loss; a decision whose query finished after a loss
 *   is dropped, and the operator state refuses the write of a replica that no longer leads.
 * - Follows the config: a group that gains autoscale gets a timer, one that loses it (or leaves
 *   the config) loses it, a changed `interval` re-arms it. Its first evaluation is at once.
 * - Never more than one query in flight per group (a tick that finds one running is skipped), and
 *   at most `maxConcurrentQueries` in flight overall. The reconciler never waits for a query:
 *   it reads the last state recorded.
 * - Each decision that changes the size is audited once here (`scale`, reason `autoscale`,
 *   actor `autoscale`; the reconciler's GroupSizer leaves sizes set by autoscale to it), and the
 *   group is enqueued (GroupChanged, cause `autoscale`). Becoming blocked and resuming are
 *   audited (`autoscaleBlocked`, `autoscaleResumed`); a failure that goes on is not audited again.
 * - While the group's tenant sleeps, autoscale does not query nor decide (the load of a sleeping
 *   tenant says nothing about its awake size).
 */
import type { Clock, TimerHandle } from '../clock/index.js';
import { groupSizing, type AutoscaleSpec, type ConfigLoader, type DroverConfig } from '../config/index.js';
import { NotLeaderError, errorMessage } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { EventType, type Reconciler } from '../reconciler/index.js';
import { keys, type AutoscaleState } from '../state/index.js';
import type { AuditEntry, NewAuditEntry } from '../store/index.js';
import { decideAutoscale, type Reading } from './decide.js';
import { PrometheusClient, type QueryAnswer, type QuerySpec } from './prometheus.js';

/** What the autoscaler needs of the reconciler (its public methods). */
export type AutoscaleTarget = Pick<Reconciler, 'operatorState' | 'sizeDecision' | 'enqueue'>;

/** How a query ended, as `drover_autoscale_queries_total{result}` counts it. */
export type QueryResult = 'ok' | Extract<QueryAnswer, { ok: false }>['kind'];

/** Metrics hooks; they must not throw. */
export interface AutoscaleObserver {
  /** A query finished (`result`: ok, no_value, error, timeout) after `durationMs`. */
  queried?(result: QueryResult, durationMs: number): void;
  /** A tick found the group's previous query still running. */
  skipped?(): void;
}

/** The last evaluation of an autoscaled group, as the metrics show it. */
export interface AutoscaleGroupStatus {
  tenant: string;
  group: string;
  /** The query's last value (null: none). */
  value: number | null;
  /** ceil(value / targetPerInstance) (null: no value). */
  recommended: number | null;
  /** The size in force after the decision. */
  size: number;
  blocked: boolean;
}

export interface AutoscalerOptions {
  target: AutoscaleTarget;
  configLoader: Pick<ConfigLoader, 'getCurrent' | 'onChange'>;
  /** Where decisions are audited (the LocalDb). */
  audit: { appendAudit(entry: NewAuditEntry): AuditEntry };
  clock: Clock;
  logger: Logger;
  /** True while this replica leads its shard. */
  isLeader: () => boolean;
  /** Leadership epoch recorded in the audit. */
  epoch?: () => number | null;
  /** Runs one query (default: PrometheusClient on the clock); `signal` aborts when the autoscaler stops. */
  query?: (spec: QuerySpec, signal: AbortSignal) => Promise<QueryAnswer>;
  /** Queries in flight at once, over every group (default 4). */
  maxConcurrentQueries?: number;
  observer?: AutoscaleObserver;
}

interface Armed {
  tenant: string;
  group: string;
  intervalMs: number;
  timer: TimerHandle;
}

const keyOf = (tenant: string, group: string): string => `${tenant}/${group}`;

/** The prefix of the keys autoscale's state is recorded under (`keys.autoscale`: autoscale/<tenant>/<group>). */
const STATE_PREFIX = 'autoscale/';

/** Every configured group with autoscale, and its settings. */
function autoscaledGroups(config: DroverConfig): Map<string, { tenant: string; group: string; spec: AutoscaleSpec }> {
  const out = new Map<string, { tenant: string; group: string; spec: AutoscaleSpec }>();
  for (const [tenant, groups] of Object.entries(config.groups)) {
    for (const group of Object.keys(groups)) {
      const spec = groupSizing(config, tenant, group)?.autoscale;
      if (spec) out.set(keyOf(tenant, group), { tenant, group, spec });
    }
  }
  return out;
}

export class Autoscaler {
  private readonly armed = new Map<string, Armed>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly statuses = new Map<string, AutoscaleGroupStatus>();
  private readonly waiting: Array<() => void> = [];
  private readonly query: (spec: QuerySpec, signal: AbortSignal) => Promise<QueryAnswer>;
  private readonly stopping = new AbortController();
  private readonly maxConcurrent: number;
  private running = 0;
  private leading = false;
  private state: 'new' | 'running' | 'stopped' = 'new';
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly opts: AutoscalerOptions) {
    const client = new PrometheusClient(opts.clock);
    this.query = opts.query ?? ((spec, signal) => client.query(spec, signal));
    this.maxConcurrent = Math.max(1, opts.maxConcurrentQueries ?? 4);
  }

  /** Follows the config; arms the timers when this replica leads. */
  start(): void {
    if (this.state !== 'new') return;
    this.state = 'running';
    this.unsubscribe = this.opts.configLoader.onChange(() => this.sync());
    this.setLeader(this.isLeader());
  }

  /** Leadership changed (the composition root forwards the elector's changes). */
  setLeader(leader: boolean): void {
    if (this.state !== 'running') return;
    this.leading = leader;
    if (!leader) {
      for (const a of this.armed.values()) a.timer.cancel();
      this.armed.clear();
      this.statuses.clear();
    }
    this.sync();
  }

  /** Cancels every timer, aborts the queries in flight and waits for them (their decisions are dropped). */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.stopping.abort();
    this.unsubscribe?.();
    for (const a of this.armed.values()) a.timer.cancel();
    this.armed.clear();
    this.statuses.clear();
    await this.idle();
  }

  /** Resolves when no evaluation is running. */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight.values()]);
  }

  /** The groups being autoscaled and their last evaluation (for the metrics). */
  status(): AutoscaleGroupStatus[] {
    return [...this.statuses.values()];
  }

  /** The groups with a timer armed (tenant/group). */
  armedGroups(): string[] {
    return [...this.armed.keys()].sort();
  }

  private isLeader(): boolean {
    try {
      return this.opts.isLeader() === true;
    } catch {
      return false;
    }
  }

  /** Arms, re-arms and cancels timers to match the config (none unless leading). */
  private sync(): void {
    if (this.state !== 'running') return;
    const wanted = this.leading ? autoscaledGroups(this.opts.configLoader.getCurrent()) : new Map<string, { tenant: string; group: string; spec: AutoscaleSpec }>();
    for (const [key, a] of this.armed) {
      const w = wanted.get(key);
      if (!w || w.spec.intervalMs !== a.intervalMs) {
        a.timer.cancel();
        this.armed.delete(key);
        if (!w) this.statuses.delete(key);
      }
    }
    if (this.leading) this.forgetStale(wanted);
    for (const [key, w] of wanted) {
      if (this.armed.has(key)) continue;
      // The first evaluation at once: a block shows without waiting an interval.
      this.armed.set(key, { tenant: w.tenant, group: w.group, intervalMs: w.spec.intervalMs, timer: this.opts.clock.schedule(this.opts.clock.nowMs(), () => this.tick(key)) });
    }
  }

  /**
   * Removes the recorded state of groups without autoscale (removed from the config, or from the
   * group): left there, an old decision would set the size again the day autoscale comes back.
   */
  private forgetStale(wanted: ReadonlyMap<string, unknown>): void {
    const { target, logger } = this.opts;
    for (const { key } of target.operatorState.list<unknown>(STATE_PREFIX)) {
      const [, tenant = '', ...rest] = key.split('/');
      const group = rest.join('/');
      if (wanted.has(keyOf(tenant, group))) continue;
      target.operatorState.set(key, null).then(
        () => logger.info({ tenant, group }, 'autoscale state removed: the group has no autoscale'),
        (err: unknown) => logger.warn({ tenant, group, err: errorMessage(err) }, 'autoscale state not removed'),
      );
    }
  }

  private tick(key: string): void {
    const a = this.armed.get(key);
    if (!a || this.state !== 'running') return;
    a.timer = this.opts.clock.schedule(this.opts.clock.nowMs() + a.intervalMs, () => this.tick(key));
    if (this.inFlight.has(key)) {
      this.opts.observer?.skipped?.();
      this.opts.logger.debug({ tenant: a.tenant, group: a.group }, 'autoscale tick skipped: the previous query is still running');
      return;
    }
    const run = this.evaluate(a.tenant, a.group)
      .catch((err: unknown) => this.opts.logger.error({ tenant: a.tenant, group: a.group, err: errorMessage(err) }, 'autoscale evaluation failed'))
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, run);
  }

  /** Waits for a query slot (at most maxConcurrent in flight). */
  private async limited<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxConcurrent) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  private stillActing(): boolean {
    return this.state === 'running' && this.leading && this.isLeader();
  }

  /** One evaluation of one group: query, decide, record, audit, enqueue. */
  private async evaluate(tenant: string, group: string): Promise<void> {
    const { target, clock, logger } = this.opts;
    const spec = groupSizing(this.opts.configLoader.getCurrent(), tenant, group)?.autoscale;
    const before = spec ? target.sizeDecision(tenant, group) : null;
    if (!spec || !before) return;
    if (before.sleeping) {
      logger.debug({ tenant, group }, 'autoscale paused: the tenant is asleep');
      return;
    }
    const started = clock.nowMs();
    const answer = await this.limited(() => this.query(spec, this.stopping.signal));
    this.opts.observer?.queried?.(answer.ok ? 'ok' : answer.kind, clock.nowMs() - started);
    if (!this.stillActing()) return;

    // The config, the size and the state may have changed while the query ran: read them now.
    const settings = groupSizing(this.opts.configLoader.getCurrent(), tenant, group)?.autoscale;
    const decision = settings ? target.sizeDecision(tenant, group) : null;
    if (!settings || !decision || decision.sleeping) return;
    const key = keys.autoscale(tenant, group);
    const previous = target.operatorState.get<AutoscaleState>(key) ?? null;
    const reading: Reading = answer.ok ? { ok: true, value: answer.value } : { ok: false, message: answer.error.message };
    const now = clock.now();
    const outcome = decideAutoscale({
      reading,
      current: decision.awakeSize,
      floor: decision.floor,
      max: decision.max,
      settings,
      // An operator's size counts as a change of size for the cooldowns. The config's does not:
      // with autoscale it is the size to start from.
      setByOthersAt: decision.source === 'operator' ? decision.since.getTime() : null,
      autoscaleInForce: decision.source === 'autoscale',
      previous,
      now: now.getTime(),
    });
    try {
      await target.operatorState.set(key, outcome.state);
    } catch (err) {
      if (err instanceof NotLeaderError) logger.info({ tenant, group }, 'autoscale decision dropped: this replica no longer leads');
      else logger.warn({ tenant, group, err: errorMessage(err) }, 'autoscale decision not recorded');
      return;
    }
    if (this.state === 'running' && this.armed.has(keyOf(tenant, group))) {
      this.statuses.set(keyOf(tenant, group), {
        tenant,
        group,
        value: answer.ok ? answer.value : null,
        recommended: outcome.recommended,
        size: outcome.change?.to ?? decision.awakeSize,
        blocked: outcome.state.blocked !== null,
      });
    }
    const audit = (action: NewAuditEntry['action'], detail: string): void => {
      this.opts.audit.appendAudit({ tenant, group, at: now, instanceId: null, action, reason: 'autoscale', event: null, actor: 'autoscale', detail, epoch: this.opts.epoch?.() ?? null });
    };
    if (outcome.blockTransition === 'blocked') {
      audit('autoscaleBlocked', outcome.decision);
      logger.warn({ tenant, group, size: decision.awakeSize, reason: reading.ok ? null : reading.message }, 'autoscale blocked: the size stays');
    } else if (outcome.blockTransition === 'resumed') {
      audit('autoscaleResumed', `${outcome.decision} (blocked since ${previous?.blocked?.since ?? 'unknown'})`);
      logger.info({ tenant, group }, 'autoscale resumed');
    }
    if (outcome.change) {
      audit('scale', `size ${outcome.change.from} -> ${outcome.change.to}: ${outcome.why}`);
      logger.info({ tenant, group, from: outcome.change.from, to: outcome.change.to, value: reading.ok ? reading.value : null, recommended: outcome.recommended }, 'autoscale changed the size');
      target.enqueue({ type: EventType.GroupChanged, tenant, groupKey: group, cause: 'autoscale' });
    } else {
      logger.debug({ tenant, group, decision: outcome.decision }, 'autoscale evaluated');
    }
  }
}
