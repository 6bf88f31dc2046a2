/**
 * The delivery worker: takes due events from the outbox and POSTs them to their endpoints,
 * signed, on the leader only. At least once: an event is marked delivered only after a 2xx, so
 * a server killed mid-delivery sends it again after restart (receivers dedupe by the event id).
 * In order per instance: one event of an (endpoint, order key) in flight at a time, and a later
 * one waits while an earlier one is pending (retrying). Failures are retried with exponential
 * backoff and jitter until the endpoint's `retryFor` has passed, then kept as dead letters.
 *
 * A slow or dead receiver never slows the reconciler: deliveries run here, bounded per endpoint
 * (`maxConcurrency`) and in total, each with a timeout, and a per-endpoint circuit breaker stops
 * calling an endpoint that keeps failing. The worker also watches draining instances and adds a
 * `drainDeadlineNear` event when a drain's deadline is near.
 */
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../clock/index.js';
import { errorMessage } from '../errors/index.js';
import type { OutboxRow, OutboxTable } from '../store/outbox.js';
import { backoffDelayMs, type BackoffPolicy } from '../util/backoff.js';
import { CircuitBreaker, DEFAULT_BREAKER, type BreakerOptions, type BreakerState } from './breaker.js';
import { renderBody, type NotificationEvent } from './events.js';
import { deadlineNearAt, deadlineNearEvent, rowsFor, testEvent } from './router.js';
import { NO_NOTIFICATIONS, type NotificationEndpoint, type NotificationSettings } from './settings.js';
import { SIGNATURE_HEADER, signatureHeader } from './signature.js';
import { WebhookTransport } from './transport.js';

/** Retries: 1 s doubling to 10 min, ±20 % jitter so a recovered receiver is not hit by every event at once. */
export const DELIVERY_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 10 * 60_000, jitter: 0.2, mode: 'around' };
/** Deliveries in flight at most, over every endpoint. */
export const MAX_IN_FLIGHT = 32;
/** The worker looks at the outbox at least this often (new rows also wake it at once). */
const IDLE_POLL_MS = 30_000;
/** While due events wait for a free slot or key, it looks again this soon. */
const BLOCKED_POLL_MS = 1_000;

export type DeliveryFailure = 'status' | 'timeout' | 'network';

export interface NotifierObserver {
  /** A delivery got a 2xx: `requestMs` the HTTP exchange, `latencyMs` from the event's fact to now. */
  delivered(endpoint: string, requestMs: number, latencyMs: number): void;
  failed(endpoint: string, kind: DeliveryFailure): void;
  /** An event was given up and kept as a dead letter. */
  dead(endpoint: string): void;
}

export interface NotifierOptions {
  outbox: Pick<OutboxTable, 'due' | 'nextDueAt' | 'markDelivered' | 'markFailed' | 'markDead' | 'add' | 'pendingEndpoints' | 'orphan' | 'drainingInstances' | 'get' | 'redeliver'>;
  clock: Clock;
  logger: Logger;
  settings: () => NotificationSettings;
  isLeader: () => boolean;
  /** The User-Agent of deliveries. */
  userAgent: string;
  random?: () => number;
  observer?: NotifierObserver;
  maxInFlight?: number;
  backoff?: BackoffPolicy;
  breaker?: BreakerOptions;
}

export interface EndpointStatus {
  name: string;
  url: string;
  format: 'json' | 'slack';
  events: string[] | null;
  tenants: string[] | null;
  inFlight: number;
  breaker: BreakerState;
  /** While the breaker is open: when it lets a probe through. */
  breakerOpenUntil: string | null;
}

interface Flight {
  done: Promise<void>;
  abort: () => void;
}


export class Notifier {
  private readonly transport = new WebhookTransport();
  private readonly random: () => number;
  private readonly maxInFlight: number;
  private readonly backoff: BackoffPolicy;
  private readonly flights = new Map<number, Flight>();
  private readonly busyKeys = new Set<string>();
  private readonly perEndpoint = new Map<string, number>();
  private readonly breakers = new Map<string, CircuitBreaker>();
  private stopped = true;
  private stopping = false;
  private timer: TimerHandle | undefined;
  private timerAt: number | null = null;
  private wakeQueued = false;
  private settingsSeen: NotificationSettings = NO_NOTIFICATIONS;
  /** When the drain watch looks next (0: at the next pump). */
  private nextDrainScanAt = 0;

  constructor(private readonly opts: NotifierOptions) {
    this.random = opts.random ?? Math.random;
    this.maxInFlight = opts.maxInFlight ?? MAX_IN_FLIGHT;
    this.backoff = opts.backoff ?? DELIVERY_BACKOFF;
  }

  start(): void {
    this.stopped = false;
    this.stopping = false;
    this.wake();
  }

  /** Stops delivering; deliveries in flight are cut and stay pending (sent again after restart). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAt = null;
    for (const flight of this.flights.values()) flight.abort();
    await Promise.allSettled([...this.flights.values()].map((f) => f.done));
    this.transport.close();
  }

  /** Something may be due: new rows, leadership, settings. Coalesced into one look per turn. */
  wake(): void {
    if (this.stopped || this.wakeQueued) return;
    this.wakeQueued = true;
    this.opts.clock.schedule(this.opts.clock.nowMs(), () => {
      this.wakeQueued = false;
      this.pump();
    });
  }

  /** A drain started, was extended or acknowledged: the drain watch looks again now. */
  drainsChanged(): void {
    this.nextDrainScanAt = 0;
    this.wake();
  }

  /** Deliveries in flight now. */
  get inFlight(): number {
    return this.flights.size;
  }

  /** Adds a test event for one endpoint; returns its id, or null when no such endpoint is configured. */
  sendTest(endpointName: string, actor: string): string | null {
    const settings = this.opts.settings();
    const endpoint = settings.endpoints.get(endpointName);
    if (!endpoint) return null;
    const now = this.opts.clock.now();
    const event = testEvent(settings.shard, now, actor);
    this.opts.outbox.add([{ eventId: event.id, endpoint: endpoint.name, eventType: 'test', tenant: null, orderKey: `event:${event.id}`, payload: JSON.stringify(event), createdAt: now.getTime(), giveUpAt: now.getTime() + endpoint.retryForMs }]);
    this.wake();
    return event.id;
  }

  /**
   * A dead letter back to pending, retried for its endpoint's `retryFor` from now. It keeps its
   * place in its key's order (its id), so later events of the same instance wait for it again.
   */
  redeliver(id: number): 'ok' | 'notDead' | 'noEndpoint' | 'notFound' {
    const row = this.opts.outbox.get(id);
    if (!row) return 'notFound';
    if (row.state !== 'dead') return 'notDead';
    const endpoint = this.opts.settings().endpoints.get(row.endpoint);
    if (!endpoint) return 'noEndpoint';
    const now = this.opts.clock.nowMs();
    if (!this.opts.outbox.redeliver(id, now, now + endpoint.retryForMs)) return 'notDead';
    this.wake();
    return 'ok';
  }

  status(): EndpointStatus[] {
    const now = this.opts.clock.nowMs();
    return [...this.opts.settings().endpoints.values()].map((e) => {
      const breaker = this.breakers.get(e.name);
      const state = breaker?.state(now) ?? 'closed';
      const until = state === 'open' ? breaker?.reopensAt() : null;
      return {
        name: e.name,
        url: e.url,
        format: e.format,
        events: e.events ? [...e.events] : null,
        tenants: e.tenants ? [...e.tenants] : null,
        inFlight: this.perEndpoint.get(e.name) ?? 0,
        breaker: state,
        breakerOpenUntil: until ? new Date(until).toISOString() : null,
      };
    });
  }

  private breakerFor(name: string): CircuitBreaker {
    let breaker = this.breakers.get(name);
    if (!breaker) this.breakers.set(name, (breaker = new CircuitBreaker(this.opts.breaker ?? DEFAULT_BREAKER)));
    return breaker;
  }

  private pump(): void {
    if (this.stopped || !this.opts.isLeader()) return;
    const { clock, outbox, logger } = this.opts;
    const now = clock.nowMs();
    let next = now + IDLE_POLL_MS;
    try {
      const settings = this.opts.settings();
      if (settings !== this.settingsSeen) this.settingsChanged(settings);
      const drainScan = this.watchDrains(settings, now);
      if (drainScan !== null) next = Math.min(next, drainScan);
      for (const endpoint of settings.endpoints.values()) {
        const breaker = this.breakerFor(endpoint.name);
        const reopens = breaker.reopensAt();
        if (reopens !== null && reopens > now) next = Math.min(next, reopens);
        const busy = this.perEndpoint.get(endpoint.name) ?? 0;
        const free = Math.min(endpoint.maxConcurrency - busy, this.maxInFlight - this.flights.size);
        if (free > 0 && breaker.state(now) !== 'open') {
          // In-flight rows are still pending heads: fetch past them.
          for (const row of outbox.due(endpoint.name, now, free + busy)) {
            if (this.flights.has(row.id) || this.busyKeys.has(`${row.endpoint}\0${row.orderKey}`)) continue;
            if ((this.perEndpoint.get(endpoint.name) ?? 0) >= endpoint.maxConcurrency || this.flights.size >= this.maxInFlight) break;
            if (!breaker.tryAcquire(now)) break;
            this.launch(row, endpoint, breaker);
          }
        }
        const due = outbox.nextDueAt(endpoint.name);
        if (due !== null) next = Math.min(next, due > now ? due : now + BLOCKED_POLL_MS);
      }
    } catch (err) {
      logger.error({ err: errorMessage(err) }, 'notification delivery pass failed');
      next = now + BLOCKED_POLL_MS * 5;
    }
    this.armTimer(next);
  }

  private armTimer(at: number): void {
    if (this.timerAt !== null && this.timerAt <= at) return;
    this.timer?.cancel();
    this.timerAt = at;
    this.timer = this.opts.clock.schedule(at, () => {
      this.timer = undefined;
      this.timerAt = null;
      this.pump();
    });
  }

  /** Endpoints that left the config: their pending events become dead letters (redeliverable if they come back). */
  private settingsChanged(settings: NotificationSettings): void {
    this.settingsSeen = settings;
    this.transport.retain(settings.endpoints);
    for (const name of this.opts.outbox.pendingEndpoints()) {
      if (settings.endpoints.has(name)) continue;
      const n = this.opts.outbox.orphan(name, `notification endpoint "${name}" is no longer in the config`);
      if (n > 0) this.opts.logger.warn({ endpoint: name, events: n }, 'notification endpoint removed from the config; its pending events kept as dead letters');
    }
    for (const name of this.breakers.keys()) if (!settings.endpoints.has(name)) this.breakers.delete(name);
    this.nextDrainScanAt = 0;
  }

  /** Adds drainDeadlineNear events for drains whose time has come; returns when to look again (null: nobody listens). */
  private watchDrains(settings: NotificationSettings, now: number): number | null {
    const listening = [...settings.endpoints.values()].some((e) => e.events === null || e.events.has('drainDeadlineNear'));
    if (!listening) return null;
    if (now < this.nextDrainScanAt) return this.nextDrainScanAt;
    let next = now + IDLE_POLL_MS;
    for (const drain of this.opts.outbox.drainingInstances()) {
      if (drain.drainAckedAt !== null || now >= drain.drainDeadline) continue;
      const nearAt = deadlineNearAt(drain.drainStartedAt, drain.drainDeadline);
      if (now < nearAt) {
        next = Math.min(next, nearAt);
        continue;
      }
      // The event's id names the deadline: adding it again is a no-op (the outbox ignores it).
      this.opts.outbox.add(rowsFor(deadlineNearEvent(settings.shard, drain, new Date(now)), settings, now));
    }
    this.nextDrainScanAt = next;
    return next;
  }

  private launch(row: OutboxRow, endpoint: NotificationEndpoint, breaker: CircuitBreaker): void {
    const key = `${row.endpoint}\0${row.orderKey}`;
    this.busyKeys.add(key);
    this.perEndpoint.set(endpoint.name, (this.perEndpoint.get(endpoint.name) ?? 0) + 1);
    const flight: Flight = { done: Promise.resolve(), abort: () => undefined };
    const done = this.deliver(row, endpoint, breaker, flight)
      .catch((err: unknown) => this.opts.logger.error({ endpoint: endpoint.name, eventId: row.eventId, err: errorMessage(err) }, 'notification delivery bookkeeping failed'))
      .finally(() => {
        this.flights.delete(row.id);
        this.busyKeys.delete(key);
        this.perEndpoint.set(endpoint.name, (this.perEndpoint.get(endpoint.name) ?? 1) - 1);
        this.wake();
      });
    flight.done = done;
    this.flights.set(row.id, flight);
  }

  /** One attempt; `flight.abort` is set to cut it (stop). */
  private async deliver(row: OutboxRow, endpoint: NotificationEndpoint, breaker: CircuitBreaker, flight: Flight): Promise<void> {
    const { clock, outbox, logger, observer } = this.opts;
    const attempt = row.attempts + 1;
    const body = endpoint.format === 'json' ? row.payload : renderBody(JSON.parse(row.payload) as NotificationEvent, endpoint.format);
    const started = clock.nowMs();
    const sent = this.transport.post(endpoint.name, endpoint.url, endpoint.maxConcurrency, body, {
      'Content-Type': 'application/json',
      'User-Agent': this.opts.userAgent,
      'Drover-Event-Id': row.eventId,
      'Drover-Event-Type': row.eventType,
      'Drover-Delivery-Attempt': String(attempt),
      [SIGNATURE_HEADER]: signatureHeader(endpoint.secrets, Math.floor(started / 1000), body),
    });
    let cut: 'timeout' | 'stop' | null = null;
    flight.abort = () => {
      cut ??= 'stop';
      sent.abort();
    };
    const timeout = clock.schedule(started + endpoint.timeoutMs, () => {
      cut ??= 'timeout';
      sent.abort();
    });
    let status: number | null = null;
    let failure: { kind: DeliveryFailure; message: string } | null = null;
    try {
      status = await sent.answer;
      if (status < 200 || status > 299) failure = { kind: 'status', message: `the receiver answered HTTP ${status}` };
    } catch (err) {
      if (cut === 'stop') return; // stopping: stays pending, sent again after restart
      failure = cut === 'timeout' ? { kind: 'timeout', message: `no answer within ${endpoint.timeoutMs} ms` } : { kind: 'network', message: `sending: ${errorMessage(err)}` };
    } finally {
      timeout.cancel();
    }
    const now = clock.nowMs();
    if (failure === null) {
      breaker.succeeded();
      outbox.markDelivered(row.id, now, status ?? 0);
      observer?.delivered(endpoint.name, now - started, now - row.createdAt);
      return;
    }
    breaker.failed(now);
    observer?.failed(endpoint.name, failure.kind);
    if (now >= row.giveUpAt) {
      outbox.markDead(row.id, now, status, failure.message);
      observer?.dead(endpoint.name);
      logger.warn({ endpoint: endpoint.name, eventId: row.eventId, attempts: attempt, err: failure.message }, 'notification given up; kept as a dead letter');
      return;
    }
    const retryAt = Math.min(row.giveUpAt, now + backoffDelayMs(this.backoff, attempt - 1, this.random));
    outbox.markFailed(row.id, now, status, failure.message, retryAt);
    logger.info({ endpoint: endpoint.name, eventId: row.eventId, attempt, retryAt: new Date(retryAt).toISOString(), err: failure.message }, 'notification delivery failed; will retry');
  }
}
