/**
 * Prometheus metrics. Controller metrics reuse the names dashboards for controllers already know
 * (`workqueue_*` with a `name` label, as client-go exports them); Drover's own are `drover_*`.
 * Gauges that describe state (instances by status, queue depth) are read when scraped, so they
 * cost nothing between scrapes.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AutoscaleGroupStatus, AutoscaleObserver } from '../autoscale/index.js';
import type { NotifierObserver } from '../notifications/index.js';
import type { Clock } from '../clock/index.js';
import type { QueueObserver } from '../queue/work-queue.js';
import type { ReconcilerObserver } from '../reconciler/index.js';

export const QUEUE_NAME = 'drover_reconciler';

/** Where scrape-time figures come from. */
export interface MetricsSources {
  queue(): { depth: number; runningSinceMs: number[]; providerWaiting: number; providerInFlight: number };
  /** Instance counts by tenant, group and status (not deleted). */
  instanceCounts(): Array<{ tenant: string; group: string; status: string; count: number }>;
  /** Desired size, in-service count and disruption state of every known group. */
  groups(): Array<{
    tenant: string;
    group: string;
    size: number;
    inService: number;
    unhealthy: number;
    shortCircuited: boolean;
    budgets: Record<string, { allowed: number | null; used: number }>;
  }>;
  agentConnections(): number;
  isLeader(): boolean;
  /** The autoscaled groups' last evaluation (on the leader; none elsewhere). */
  autoscale?(): AutoscaleGroupStatus[];
  /** Each webhook endpoint's queue: events pending and dead, the oldest pending's time, whether its breaker is open. */
  notifications?(): Array<{ endpoint: string; pending: number; dead: number; oldestPendingAt: number | null; breakerOpen: boolean }>;
}

export class DroverMetrics {
  readonly registry = new Registry();
  private readonly adds: Counter<'name'>;
  private readonly queueDuration: Histogram<'name'>;
  private readonly workDuration: Histogram<'name'>;
  private readonly retries: Counter<'name'>;
  private readonly reconciles: Counter<'outcome'>;
  private readonly reconcileDuration: Histogram<'outcome'>;
  private readonly providerCalls: Histogram<'operation'>;
  private readonly providerErrors: Counter<'operation'>;
  private readonly drains: Counter<'reason'>;
  private readonly deletes: Counter<'reason'>;
  readonly healthReports: Counter;
  readonly agentRejects: Counter<'reason'>;
  readonly agentBootstraps: Counter<'result'>;
  readonly configReloads: Counter<'result'>;
  readonly httpRequests: Counter<'method' | 'route' | 'code'>;
  private readonly autoscaleQueries: Counter<'result'>;
  private readonly autoscaleQueryDuration: Histogram;
  private readonly autoscaleSkipped: Counter;
  private readonly notificationDeliveries: Counter<'endpoint' | 'result'>;
  private readonly notificationDeadLetters: Counter<'endpoint'>;
  private readonly notificationRequestDuration: Histogram<'endpoint'>;
  private readonly notificationLatency: Histogram<'endpoint'>;

  /** Group figures for the scrape in progress: computed once per scrape, not once per gauge. */
  private groupsCache: ReturnType<MetricsSources['groups']> | null = null;

  constructor(
    private readonly clock: Clock,
    source: MetricsSources,
  ) {
    const sources: MetricsSources = { ...source, groups: () => (this.groupsCache ??= source.groups()) };
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // prom-client names these gauges *_total, which Prometheus reserves for counters (promtool
    // rejects them); the per-type gauges without the suffix carry the same information.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);

    new Gauge({
      name: 'workqueue_depth',
      help: 'Current depth of the work queue (keys waiting).',
      labelNames: ['name'],
      registers,
      collect() {
        this.set({ name: QUEUE_NAME }, sources.queue().depth);
      },
    });
    this.adds = new Counter({ name: 'workqueue_adds_total', help: 'Total number of adds handled by the work queue.', labelNames: ['name'], registers });
    this.queueDuration = new Histogram({
      name: 'workqueue_queue_duration_seconds',
      help: 'How long in seconds an item stays in the work queue before being requested.',
      labelNames: ['name'],
      buckets: [0.0001, 0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60],
      registers,
    });
    this.workDuration = new Histogram({
      name: 'workqueue_work_duration_seconds',
      help: 'How long in seconds processing an item from the work queue takes.',
      labelNames: ['name'],
      buckets: [0.0001, 0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60],
      registers,
    });
    const now = (): number => this.clock.nowMs();
    new Gauge({
      name: 'workqueue_unfinished_work_seconds',
      help: 'How many seconds of work has been done that is in progress and has not been observed by work_duration.',
      labelNames: ['name'],
      registers,
      collect() {
        const t = now();
        this.set({ name: QUEUE_NAME }, sources.queue().runningSinceMs.reduce((sum, since) => sum + (t - since) / 1000, 0));
      },
    });
    new Gauge({
      name: 'workqueue_longest_running_processor_seconds',
      help: 'How many seconds has the longest running processor for the work queue been running.',
      labelNames: ['name'],
      registers,
      collect() {
        const t = now();
        const since = sources.queue().runningSinceMs;
        this.set({ name: QUEUE_NAME }, since.length === 0 ? 0 : (t - Math.min(...since)) / 1000);
      },
    });
    this.retries = new Counter({ name: 'workqueue_retries_total', help: 'Total number of retries handled by the work queue.', labelNames: ['name'], registers });

    this.reconciles = new Counter({ name: 'drover_reconcile_total', help: 'Group reconciles by outcome.', labelNames: ['outcome'], registers });
    this.reconcileDuration = new Histogram({
      name: 'drover_reconcile_duration_seconds',
      help: 'Time to reconcile one group (facts, plan, apply).',
      labelNames: ['outcome'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    });
    this.providerCalls = new Histogram({
      name: 'drover_provider_call_duration_seconds',
      help: 'Provider API call latency by operation.',
      labelNames: ['operation'],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.providerErrors = new Counter({ name: 'drover_provider_errors_total', help: 'Failed provider API calls by operation.', labelNames: ['operation'], registers });
    this.drains = new Counter({ name: 'drover_drains_total', help: 'Drains started, by reason.', labelNames: ['reason'], registers });
    this.deletes = new Counter({ name: 'drover_instance_deletes_total', help: 'Instances deleted at the provider, by reason.', labelNames: ['reason'], registers });
    new Gauge({
      name: 'drover_provider_calls_waiting',
      help: 'Provider calls waiting for a rate-limit slot.',
      registers,
      collect() {
        this.set(sources.queue().providerWaiting);
      },
    });
    new Gauge({
      name: 'drover_provider_calls_in_flight',
      help: 'Provider calls in flight.',
      registers,
      collect() {
        this.set(sources.queue().providerInFlight);
      },
    });
    new Gauge({
      name: 'drover_instances',
      help: 'Instances not yet deleted, by tenant, group and status.',
      labelNames: ['tenant', 'group', 'status'],
      registers,
      collect() {
        this.reset();
        for (const row of sources.instanceCounts()) this.set({ tenant: row.tenant, group: row.group, status: row.status }, row.count);
      },
    });
    /** A gauge with one series per (tenant, group) of `rows()`, read at each scrape; a null value leaves the series out. */
    const perGroupGauge = <R extends { tenant: string; group: string }>(name: string, help: string, rows: () => readonly R[], pick: (row: R) => number | null): void => {
      new Gauge({
        name,
        help,
        labelNames: ['tenant', 'group'],
        registers,
        collect() {
          this.reset();
          for (const row of rows()) {
            const v = pick(row);
            if (v !== null) this.set({ tenant: row.tenant, group: row.group }, v);
          }
        },
      });
    };
    const groupGauge = (name: string, help: string, pick: (g: ReturnType<MetricsSources['groups']>[number]) => number): void => perGroupGauge(name, help, () => sources.groups(), pick);
    groupGauge('drover_group_desired_size', 'Desired size of each group.', (g) => g.size);
    groupGauge('drover_group_in_service', 'Instances in service (running, healthy, not leaving) of each group.', (g) => g.inService);
    groupGauge('drover_group_unhealthy', 'Instances judged or seen unhealthy, not yet deleted, of each group.', (g) => g.unhealthy);
    groupGauge('drover_group_short_circuited', '1 while the group is above maxUnhealthy and automatic replacement for health is paused.', (g) => (g.shortCircuited ? 1 : 0));
    new Gauge({
      name: 'drover_disruption_budget_allowed',
      help: 'Voluntary disruptions the most restrictive active budget still allows now, by reason (absent: no budget applies).',
      labelNames: ['tenant', 'group', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const g of sources.groups()) {
          for (const [reason, b] of Object.entries(g.budgets)) if (b.allowed !== null) this.set({ tenant: g.tenant, group: g.group, reason }, b.allowed);
        }
      },
    });
    new Gauge({
      name: 'drover_disruption_budget_used',
      help: 'Instances disrupted now for each voluntary reason (draining, or waiting for a replacement).',
      labelNames: ['tenant', 'group', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const g of sources.groups()) for (const [reason, b] of Object.entries(g.budgets)) this.set({ tenant: g.tenant, group: g.group, reason }, b.used);
      },
    });
    new Gauge({
      name: 'drover_agent_connections',
      help: 'Agents connected now.',
      registers,
      collect() {
        this.set(sources.agentConnections());
      },
    });
    new Gauge({
      name: 'drover_leader',
      help: '1 while this server is the shard leader.',
      registers,
      collect() {
        this.set(sources.isLeader() ? 1 : 0);
      },
    });
    this.healthReports = new Counter({ name: 'drover_health_reports_total', help: 'Health reports received from agents.', registers });
    this.agentRejects = new Counter({ name: 'drover_agent_rejected_total', help: 'Agent connections refused, by reason.', labelNames: ['reason'], registers });
    this.agentBootstraps = new Counter({ name: 'drover_agent_bootstraps_total', help: 'Agent bootstrap token exchanges, by result (ok, or why refused).', labelNames: ['result'], registers });
    this.configReloads = new Counter({ name: 'drover_config_reloads_total', help: 'Config reloads by result.', labelNames: ['result'], registers });
    this.httpRequests = new Counter({ name: 'drover_http_requests_total', help: 'Admin API requests.', labelNames: ['method', 'route', 'code'], registers });

    const autoscaleGauge = (name: string, help: string, pick: (s: AutoscaleGroupStatus) => number | null): void => perGroupGauge(name, help, () => sources.autoscale?.() ?? [], pick);
    autoscaleGauge('drover_autoscale_value', "The autoscale query's last value, by group (absent while it gives none).", (s) => s.value);
    autoscaleGauge('drover_autoscale_recommended_size', 'ceil(value / targetPerInstance) of the last autoscale query, by group (absent while it gives no value).', (s) => s.recommended);
    autoscaleGauge('drover_autoscale_blocked', '1 while autoscale cannot act on a group (its query failed or gave no number) and keeps its size.', (s) => (s.blocked ? 1 : 0));
    this.autoscaleQueries = new Counter({ name: 'drover_autoscale_queries_total', help: 'Autoscale queries to Prometheus, by result (ok, no_value, error, timeout).', labelNames: ['result'], registers });
    this.autoscaleQueryDuration = new Histogram({
      name: 'drover_autoscale_query_duration_seconds',
      help: 'Time an autoscale query to Prometheus took.',
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.autoscaleSkipped = new Counter({ name: 'drover_autoscale_skipped_total', help: "Autoscale evaluations skipped because the group's previous query was still running.", registers });

    this.notificationDeliveries = new Counter({
      name: 'drover_notification_deliveries_total',
      help: 'Webhook delivery attempts by endpoint and result (delivered, http_error, timeout, network_error).',
      labelNames: ['endpoint', 'result'],
      registers,
    });
    this.notificationDeadLetters = new Counter({ name: 'drover_notification_dead_letters_total', help: 'Webhook events given up after retrying for the endpoint\'s retryFor, by endpoint.', labelNames: ['endpoint'], registers });
    this.notificationRequestDuration = new Histogram({
      name: 'drover_notification_request_duration_seconds',
      help: 'Time a successful webhook delivery took (request to answer), by endpoint.',
      labelNames: ['endpoint'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.notificationLatency = new Histogram({
      name: 'drover_notification_delivery_latency_seconds',
      help: 'Time from an event to its successful delivery (retries included), by endpoint.',
      labelNames: ['endpoint'],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 3600, 86400],
      registers,
    });
    const notificationGauge = (name: string, help: string, pick: (row: NonNullable<ReturnType<NonNullable<MetricsSources['notifications']>>>[number], nowMs: number) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['endpoint'],
        registers,
        collect() {
          this.reset();
          const t = now();
          for (const row of sources.notifications?.() ?? []) this.set({ endpoint: row.endpoint }, pick(row, t));
        },
      });
    };
    notificationGauge('drover_notification_pending', 'Webhook events waiting for delivery (or retrying), by endpoint.', (r) => r.pending);
    notificationGauge('drover_notification_dead_letters', 'Webhook events given up and kept for redelivery, by endpoint.', (r) => r.dead);
    notificationGauge('drover_notification_oldest_pending_age_seconds', 'Age of the oldest webhook event waiting for delivery, by endpoint (0: none waiting).', (r, t) => (r.oldestPendingAt === null ? 0 : Math.max(0, (t - r.oldestPendingAt) / 1000)));
    notificationGauge('drover_notification_circuit_open', '1 while deliveries to the endpoint are paused by its circuit breaker.', (r) => (r.breakerOpen ? 1 : 0));
  }

  /** Hooks for the webhook delivery worker. */
  notifierObserver(): NotifierObserver {
    const results = { status: 'http_error', timeout: 'timeout', network: 'network_error' } as const;
    return {
      delivered: (endpoint, requestMs, latencyMs) => {
        this.notificationDeliveries.inc({ endpoint, result: 'delivered' });
        this.notificationRequestDuration.observe({ endpoint }, requestMs / 1000);
        this.notificationLatency.observe({ endpoint }, latencyMs / 1000);
      },
      failed: (endpoint, kind) => this.notificationDeliveries.inc({ endpoint, result: results[kind] }),
      dead: (endpoint) => this.notificationDeadLetters.inc({ endpoint }),
    };
  }

  /** Hooks for the autoscaler. */
  autoscaleObserver(): AutoscaleObserver {
    return {
      queried: (result, durationMs) => {
        this.autoscaleQueries.inc({ result });
        this.autoscaleQueryDuration.observe(durationMs / 1000);
      },
      skipped: () => this.autoscaleSkipped.inc(),
    };
  }

  /** Hooks for the work queue. */
  queueObserver(): QueueObserver {
    return {
      added: () => this.adds.inc({ name: QUEUE_NAME }),
      started: (_key, waitMs) => this.queueDuration.observe({ name: QUEUE_NAME }, waitMs / 1000),
      finished: (_key, durationMs) => this.workDuration.observe({ name: QUEUE_NAME }, durationMs / 1000),
    };
  }

  /** Hooks for the reconciler. */
  reconcilerObserver(): ReconcilerObserver {
    return {
      reconciled: (outcome, durationMs) => {
        this.reconciles.inc({ outcome });
        this.reconcileDuration.observe({ outcome }, durationMs / 1000);
      },
      providerCall: (op, durationMs, error) => {
        this.providerCalls.observe({ operation: op }, durationMs / 1000);
        if (error) this.providerErrors.inc({ operation: op });
      },
      drainStarted: (reason) => this.drains.inc({ reason }),
      instanceDeleted: (reason) => this.deletes.inc({ reason }),
      retried: () => this.retries.inc({ name: QUEUE_NAME }),
    };
  }

  async render(): Promise<{ contentType: string; body: string }> {
    this.groupsCache = null;
    try {
      return { contentType: this.registry.contentType, body: await this.registry.metrics() };
    } finally {
      this.groupsCache = null;
    }
  }
}
