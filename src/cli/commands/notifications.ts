/**
 * Webhooks from the command line: `drover notifications list | log | test NAME | redeliver`.
 * Everything goes through the admin API (`/v1/notifications...`, src/server/notification-routes.ts)
 * and `-o json` prints its answers unchanged, so a script sees what the CLI shows.
 *
 * Exit codes are the CLI's (client.ts): 0 ok, 1 the server refused (an unknown endpoint or
 * delivery is 404, a delivery that is not a dead letter 409, a tenant-scoped token 403) or a test
 * event was given up, 2 bad command line (checked here before anything is sent), 3 unreachable,
 * 4 `test --wait` gave up waiting.
 */
import type { BulkRedeliveryView, DeliveryView, NotificationEndpointView, RedeliveryView, TestEventView } from '../../server/notification-routes.js';
import { ApiClient, CliError, EXIT } from '../client.js';
import { age, duration, json, parseOutput, table } from '../format.js';
import type { GlobalOptions } from './admin.js';

type Print = (text: string) => void;

/** The delivery states the API knows (`--state`). */
export const DELIVERY_STATES = ['pending', 'delivered', 'dead'] as const;
/** The largest page the API gives (`--limit`), as in notification-routes.ts. */
export const MAX_LOG_LIMIT = 1_000;
/** How often `log --watch` asks for new rows. */
export const WATCH_INTERVAL_MS = 2_000;

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const DELIVERY_ID = /^\d{1,15}$/;

function checkEndpoint(name: string, what: string): string {
  if (!NAME.test(name)) throw new CliError(`${what}: expected an endpoint name, got "${name}"`, EXIT.usage);
  return name;
}

/** `drover notifications list`: each endpoint with its backlog, dead letters and breaker. */
export async function list(opts: GlobalOptions, print: Print): Promise<void> {
  const out = parseOutput(opts.output);
  const endpoints = await new ApiClient(opts).request<NotificationEndpointView[]>('GET', '/v1/notifications');
  if (out === 'json') return print(json(endpoints));
  if (endpoints.length === 0) return print('no notification endpoints configured (the config\'s `notifications`)');
  const now = Date.now();
  const headers = ['name', 'url', 'format', 'pending', 'oldest-pending', 'dead', 'breaker'];
  if (out === 'wide') headers.push('in-flight', 'events', 'tenants');
  print(
    table(
      headers,
      endpoints.map((e) => {
        const breaker = e.breaker === 'open' && e.breakerOpenUntil ? `open until ${e.breakerOpenUntil}` : e.breaker;
        const row: Array<string | number> = [e.name, e.url, e.format, e.pending, age(e.oldestPendingAt, now), e.dead, breaker];
        if (out === 'wide') row.push(e.inFlight, e.events ? e.events.join(',') : 'all', e.tenants ? e.tenants.join(',') : 'all');
        return row;
      }),
    ),
  );
}

export interface LogOptions extends GlobalOptions {
  endpoint?: string;
  state?: string;
  event?: string;
  limit?: string;
  watch?: boolean;
}

/** The query of `GET /v1/notifications/deliveries` for these options; a bad option is a usage error. */
export function logQuery(opts: LogOptions): URLSearchParams {
  const params = new URLSearchParams();
  if (opts.endpoint !== undefined) params.set('endpoint', checkEndpoint(opts.endpoint, '--endpoint'));
  if (opts.state !== undefined) {
    if (!(DELIVERY_STATES as readonly string[]).includes(opts.state)) throw new CliError(`--state: expected one of ${DELIVERY_STATES.join(', ')}, got "${opts.state}"`, EXIT.usage);
    params.set('state', opts.state);
  }
  if (opts.event !== undefined) {
    if (opts.event === '' || opts.event.length > 200) throw new CliError(`--event: expected an event id such as ev-local-42, got "${opts.event}"`, EXIT.usage);
    params.set('event', opts.event);
  }
  if (opts.limit !== undefined) {
    const n = /^\d{1,5}$/.test(opts.limit) ? Number(opts.limit) : NaN;
    if (!(n >= 1 && n <= MAX_LOG_LIMIT)) throw new CliError(`--limit: expected a whole number from 1 to ${MAX_LOG_LIMIT}, got "${opts.limit}"`, EXIT.usage);
    params.set('limit', String(n));
  }
  return params;
}

/** "850ms", "3s", "5m": how long a delivery took from its event; "-" when not delivered. */
export function latency(ms: number | null): string {
  if (ms === null) return '-';
  return ms < 1_000 ? `${Math.max(0, Math.round(ms))}ms` : duration(ms);
}

/** What the receiver last answered: its status, or how the attempt failed without one. */
function lastAnswer(d: DeliveryView): string {
  if (d.lastStatus !== null) return String(d.lastStatus);
  if (d.lastError === null) return '-';
  return /no answer within/.test(d.lastError) ? 'timeout' : 'no answer';
}

/**
 * Least widths of the columns while watching, so rows that come later (a longer event type, an
 * ISO time when the first look found nothing) still line up: id, time, endpoint, event, state,
 * attempts, last status, latency, then the wide ones.
 */
const WATCH_MIN_WIDTHS = [6, 24, 12, 17, 9, 8, 11, 7, 24, 12, 24];

const LOG_HEADERS = ['id', 'time', 'endpoint', 'event', 'state', 'attempts', 'last-status', 'latency'];
const WIDE_HEADERS = ['event-id', 'tenant', 'next-attempt', 'last-error'];

function logRow(d: DeliveryView, wide: boolean): Array<string | number> {
  const row: Array<string | number> = [d.id, d.createdAt, d.endpoint, d.eventType, d.state, d.attempts, lastAnswer(d), latency(d.latencyMs)];
  if (wide) row.push(d.eventId, d.tenant ?? '-', d.nextAttemptAt ?? '-', d.lastError ?? '-');
  return row;
}

/**
 * `drover notifications log`: deliveries, newest first (as the API gives them). With `--watch`
 * the first page is shown oldest first, then the CLI asks again every 2 s and prints each
 * delivery that is new or whose state or attempts changed (a pending one retried, delivered,
 * given up), until interrupted. A change is seen while the delivery is among the newest
 * `--limit` rows the filters select.
 */
export async function log(opts: LogOptions, print: Print, signal?: AbortSignal): Promise<void> {
  const out = parseOutput(opts.output);
  const params = logQuery(opts);
  const client = new ApiClient(opts);
  const path = `/v1/notifications/deliveries${params.size ? `?${params.toString()}` : ''}`;
  const rows = await client.request<DeliveryView[]>('GET', path);
  const wide = out === 'wide';
  if (!opts.watch) {
    if (out === 'json') return print(json(rows));
    if (rows.length === 0) return print('no deliveries');
    return print(table(wide ? [...LOG_HEADERS, ...WIDE_HEADERS] : LOG_HEADERS, rows.map((d) => logRow(d, wide))));
  }
  // Watching: a table whose column widths are those of the first look (or the headers), then
  // one line per change in those widths, so the lines stay under their headers; JSON: one line
  // per delivery, as the API shows it.
  const headers = wide ? [...LOG_HEADERS, ...WIDE_HEADERS] : LOG_HEADERS;
  const seen = new Map<number, string>();
  const widths = headers.map((h, i) => Math.max(h.length, WATCH_MIN_WIDTHS[i] ?? 0, ...rows.map((d) => String(logRow(d, wide)[i]).length)));
  const line = (cells: ReadonlyArray<string | number>): string => cells.map((c, i) => (i === cells.length - 1 ? String(c) : String(c).padEnd(widths[i] ?? 0))).join('   ').trimEnd();
  const show = (batch: DeliveryView[]): void => {
    // The API gives newest first; changes read best oldest first.
    for (const d of [...batch].reverse()) {
      const mark = `${d.state}/${d.attempts}`;
      if (seen.get(d.id) === mark) continue;
      seen.set(d.id, mark);
      print(out === 'json' ? JSON.stringify(d) : line(logRow(d, wide)));
    }
  };
  if (out !== 'json') print(line(headers.map((h) => h.toUpperCase())));
  show(rows);
  while (!signal?.aborted) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, WATCH_INTERVAL_MS);
      signal?.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    if (signal?.aborted) return;
    show(await client.request<DeliveryView[]>('GET', path));
  }
}

export interface TestOptions extends GlobalOptions {
  wait?: boolean;
  timeout?: string;
}

function parseTimeout(text: string): number {
  const match = /^(\d{1,6})(ms|s|m|h)$/.exec(text);
  if (!match) throw new CliError(`--timeout: expected a duration such as 30s or 5m, got "${text}"`, EXIT.usage);
  return Number(match[1]) * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
}

/**
 * `drover notifications test NAME`: the server signs and sends a `test` event to that endpoint
 * only, through the same outbox and retries as any event. With `--wait`, follows it until it is
 * delivered (exit 0), given up (exit 1) or `--timeout` passes (exit 4).
 */
export async function test(name: string, opts: TestOptions, print: Print, progress: (line: string) => void = () => undefined): Promise<void> {
  checkEndpoint(name, 'endpoint');
  const out = parseOutput(opts.output);
  const timeoutMs = opts.wait ? parseTimeout(opts.timeout ?? '1m') : 0;
  const client = new ApiClient(opts);
  const sent = await client.request<TestEventView>('POST', `/v1/notifications/${name}/test`);
  if (!opts.wait) {
    print(out === 'json' ? json(sent) : `test event ${sent.eventId} queued for ${sent.endpoint}; follow it with: drover notifications log --event ${sent.eventId}`);
    return;
  }
  const deadline = Date.now() + timeoutMs;
  const path = `/v1/notifications/deliveries?${new URLSearchParams({ endpoint: sent.endpoint, event: sent.eventId }).toString()}`;
  let attempts = 0;
  for (;;) {
    const [d] = await client.request<DeliveryView[]>('GET', path);
    if (d && d.attempts > attempts && d.state === 'pending') {
      attempts = d.attempts;
      progress(`attempt ${d.attempts} failed (${d.lastError ?? `HTTP ${d.lastStatus ?? '?'}`}); next at ${d.nextAttemptAt ?? '-'}`);
    }
    if (d && d.state !== 'pending') {
      if (out === 'json') print(json(d));
      else if (d.state === 'delivered') print(`test event ${d.eventId} delivered to ${d.endpoint} (HTTP ${d.lastStatus ?? '?'}) in ${latency(d.latencyMs)}, after ${d.attempts} attempt${d.attempts === 1 ? '' : 's'}`);
      if (d.state === 'dead') throw new CliError(`test event ${d.eventId} to ${d.endpoint} was given up after ${d.attempts} attempts: ${d.lastError ?? 'failed'}`, EXIT.error);
      return;
    }
    if (Date.now() >= deadline) {
      const why = d?.lastError ? `; last attempt: ${d.lastError}` : '';
      throw new CliError(`test event ${sent.eventId} to ${sent.endpoint} not delivered within ${opts.timeout ?? '1m'} (still pending, retried for the endpoint's retryFor${why})`, EXIT.timeout);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

export interface RedeliverOptions extends GlobalOptions {
  endpoint?: string;
}

/**
 * `drover notifications redeliver ID...` puts those dead letters back to pending (each retried
 * for its endpoint's retryFor from now, in its place in its instance's order);
 * `--endpoint NAME` does so for every dead letter of that endpoint. One of the two, not both.
 * Every ID is tried; the command fails (exit 1) when the server refused any of them.
 */
export async function redeliver(ids: string[], opts: RedeliverOptions, print: Print, warn: (line: string) => void): Promise<void> {
  const out = parseOutput(opts.output);
  if ((ids.length > 0) === (opts.endpoint !== undefined)) {
    throw new CliError('redeliver: give delivery ids (from drover notifications log --state dead) or --endpoint NAME, not both', EXIT.usage);
  }
  const client = new ApiClient(opts);
  if (opts.endpoint !== undefined) {
    const name = checkEndpoint(opts.endpoint, '--endpoint');
    const result = await client.request<BulkRedeliveryView>('POST', `/v1/notifications/${name}/redeliver`);
    print(out === 'json' ? json(result) : `${result.redelivered} dead letter${result.redelivered === 1 ? '' : 's'} of ${result.endpoint} back to pending`);
    return;
  }
  const bad = ids.find((id) => !DELIVERY_ID.test(id));
  if (bad !== undefined) throw new CliError(`redeliver: expected delivery ids (numbers, as drover notifications log shows them), got "${bad}"`, EXIT.usage);
  const done: RedeliveryView[] = [];
  let refused = 0;
  for (const id of new Set(ids)) {
    try {
      const r = await client.request<RedeliveryView>('POST', `/v1/notifications/deliveries/${id}/redeliver`);
      done.push(r);
      if (out !== 'json') print(`delivery ${r.id} (${r.eventId} to ${r.endpoint}) back to pending`);
    } catch (err) {
      // The server's refusal of one id does not stop the others; an unreachable server does.
      if (!(err instanceof CliError) || err.exitCode !== EXIT.error) throw err;
      refused++;
      warn(`drover: ${err.message}`);
    }
  }
  if (out === 'json') print(json(done));
  if (refused > 0) throw new CliError(`${refused} of ${new Set(ids).size} deliveries not redelivered`, EXIT.error);
}
