/**
 * A protocol-level fake of the Hetzner Cloud API (REST + JSON under `/v1`) on loopback, for
 * the Hetzner provider's tests and benchmark. The provider talks to it with its real client
 * (plain `fetch`, `Authorization: Bearer <token>`, base URL from HCLOUD_ENDPOINT), so its
 * request encoding, error decoding, action polling, pagination and rate-limit handling all run.
 *
 * Routes: POST/GET /servers, GET/PUT/DELETE /servers/{id}, GET /servers/{id}/actions/{action_id},
 * GET /actions/{id}, GET /actions?id=…. See README.md for what is modelled, what is not, and the
 * parts of Hetzner's API reference each shape was checked against.
 *
 * Contract (other code depends on it): `FakeHcloud`, `FakeHcloudOptions` and the public members
 * below; `start()` answers the base URL including `/v1`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer, readBody } from '../loopback.js';
import { TokenBucket } from '../ec2/token-bucket.js';
import { Catalog, type ImageSpec, type LocationSpec, type ServerTypeSpec } from './catalog.js';
import { defaultMessage, type ErrorDetails, errors, HcloudError, invalidInput, statusFor } from './errors.js';
import {
  type ActionRecord,
  type FakeAction,
  type FakeServer,
  HcloudModel,
  type ServerRecord,
  type ServerStatus,
  type UnavailableSpec,
} from './model.js';
import { actionJson, type Json, serverJson } from './wire.js';

export type { FakeAction, FakeServer, ServerStatus, UnavailableSpec };

/** The routes the fake answers, by name (for failNext, count and the call log). */
export const ROUTES = ['create_server', 'list_servers', 'get_server', 'update_server', 'delete_server', 'get_server_action', 'get_action', 'list_actions', 'list_networks', 'list_firewalls'] as const;
export type RouteName = (typeof ROUTES)[number];

export const DEFAULT_TOKEN = 'hcloud-fake-token';

export interface RateLimitSpec {
  /** The bucket's size: RateLimit-Limit (Hetzner: 3600). At least 1. */
  limit: number;
  /** Requests regained per second (Hetzner: 1). Above 0. */
  refillPerSecond: number;
}

export interface FakeHcloudOptions {
  /** The clock (ms since the epoch); default `Date.now`. Every timed behaviour reads only this. */
  now?: () => number;
  /** The API token(s) accepted as `Authorization: Bearer <token>`; default DEFAULT_TOKEN. */
  token?: string | readonly string[];
  /** How long a create_server action runs (the server is running when it succeeds). Default 2000. */
  actionMs?: number;
  /** How long a delete_server action runs (the server is gone when it succeeds). Default 1000. */
  deleteMs?: number;
  /** Where a server without `location`/`datacenter` is placed (if available there). Default 'fsn1'. */
  defaultLocation?: string;
  /** The project's rate limit (none by default); also `setRateLimit`. */
  rateLimit?: RateLimitSpec;
  /** What can be ordered; defaults in catalog.ts. */
  serverTypes?: readonly ServerTypeSpec[];
  images?: readonly ImageSpec[];
  locations?: readonly LocationSpec[];
  /**
   * Latency added to every answer (or per call), after the request has been acted on — as a slow
   * network would: the work is done even if the client gives up. Timers, not blocking: other
   * requests are answered meanwhile. Default 0.
   */
  responseDelayMs?: number | ((call: { method: string; path: string; route?: RouteName }) => number);
  /** Called for each created server, with its user data ('' if none). */
  onCreate?: (server: FakeServer & { userData: string }) => void;
  /** Called once per server when its deletion starts (DELETE or deleteExternally). */
  onDelete?: (server: FakeServer) => void;
}

export interface FaultSpec {
  /** The Hetzner error code to answer, e.g. 'server_error', 'resource_unavailable'. */
  code: string;
  /** Default: the status the fake sends with the code (errors.ts STATUS). */
  status?: number;
  /** Default: a message for the code. */
  message?: string;
  details?: ErrorDetails;
  /** How many matching calls to fail; default 1. */
  count?: number;
}

export interface RecordedCall {
  method: string;
  /** The path below the base URL, without the query: '/servers/50000001'. */
  path: string;
  /** The query string without '?', '' if none. */
  query: string;
  /** The route matched; undefined for an unknown path. */
  route?: RouteName;
  /** The fake's clock when the request arrived. */
  at: number;
  status: number;
  /** The error code answered, if any. */
  code?: string;
}

interface PendingFault {
  method: string;
  matches: (path: string, route: RouteName | undefined) => boolean;
  error: HcloudError;
  left: number;
}

interface Matched {
  route: RouteName;
  params: number[];
  /** A path parameter that is not a positive integer. */
  badParam?: string;
}

const BASE = '/v1';
const MAX_BODY = 1024 * 1024;

export class FakeHcloud {
  /** Every request, in arrival order. */
  readonly calls: RecordedCall[] = [];
  /** Errors thrown by `onCreate` / `onDelete` (they never fail the request that caused them). */
  readonly hookErrors: unknown[] = [];

  private readonly now: () => number;
  private readonly tokens: ReadonlySet<string>;
  private readonly model: HcloudModel;
  private readonly faults: PendingFault[] = [];
  private readonly delayOf: (call: { method: string; path: string; route?: RouteName }) => number;
  private bucket: TokenBucket | undefined;
  private readonly http = new LoopbackServer('FakeHcloud', (req, res) => this.onRequest(req, res));
  private readonly networks = new Map<string, number>();
  private readonly firewalls = new Map<string, number>();

  constructor(options: FakeHcloudOptions = {}) {
    this.now = options.now ?? Date.now;
    const token = options.token ?? DEFAULT_TOKEN;
    this.tokens = new Set(typeof token === 'string' ? [token] : token);
    const delay = options.responseDelayMs ?? 0;
    this.delayOf = typeof delay === 'function' ? delay : () => delay;
    const actionMs = options.actionMs ?? 2000;
    const deleteMs = options.deleteMs ?? 1000;
    for (const [name, v] of [['actionMs', actionMs], ['deleteMs', deleteMs]] as const) {
      if (!Number.isFinite(v) || v < 0) throw new RangeError(`${name} must be a finite number >= 0, got ${v}`);
    }
    const onCreate = options.onCreate;
    const onDelete = options.onDelete;
    this.model = new HcloudModel({
      catalog: new Catalog(options.serverTypes, options.images, options.locations),
      actionMs,
      deleteMs,
      defaultLocation: options.defaultLocation ?? 'fsn1',
      onCreate: onCreate ? (s) => this.guard(() => onCreate(s)) : undefined,
      onDelete: onDelete ? (s) => this.guard(() => onDelete(s)) : undefined,
    });
    if (options.rateLimit) this.setRateLimit(options.rateLimit);
  }

  // ---- server ------------------------------------------------------------------------------

  /** Listens on 127.0.0.1 (an ephemeral port); answers the base URL, `http://127.0.0.1:<port>/v1` (HCLOUD_ENDPOINT). */
  async start(): Promise<string> {
    await this.http.start();
    return this.endpoint;
  }

  /** The base URL, including `/v1`. */
  get endpoint(): string {
    return `${this.http.origin}${BASE}`;
  }

  /** Stops listening, drops kept-alive connections and answers still delayed. */
  async close(): Promise<void> {
    await this.http.close();
  }

  // ---- controls ----------------------------------------------------------------------------

  /** Registers a network by name (GET /networks?name= finds it); answers its id. */
  addNetwork(name: string): number {
    const id = this.networks.get(name) ?? 1_000 + this.networks.size + 1;
    this.networks.set(name, id);
    return id;
  }

  /** Registers a firewall by name (GET /firewalls?name= finds it); answers its id. */
  addFirewall(name: string): number {
    const id = this.firewalls.get(name) ?? 2_000 + this.firewalls.size + 1;
    this.firewalls.set(name, id);
    return id;
  }

  /**
   * A per-project token bucket on the fake's clock (none by default; `null` removes it): it
   * starts full, regains `refillPerSecond` a second, and a request finding it empty gets 429
   * `rate_limit_exceeded` without taking anything. While set, every answer carries
   * RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset (unix seconds when it is full again).
   */
  setRateLimit(spec: RateLimitSpec | null): void {
    if (spec === null) {
      this.bucket = undefined;
      return;
    }
    if (!(spec.refillPerSecond > 0) || !Number.isFinite(spec.refillPerSecond)) {
      throw new RangeError(`refillPerSecond must be a finite number > 0, got ${spec.refillPerSecond}`);
    }
    this.bucket = new TokenBucket({ burst: spec.limit, refillPerSecond: spec.refillPerSecond }, this.now);
  }

  /**
   * Server creation fails with `resource_unavailable` (412, "error during placement") — or
   * `placement_error` (422) with `code` — for that server type in that location (either may be
   * left out: any). A create without a location is placed in another location that has room.
   */
  setUnavailable(spec: UnavailableSpec): void {
    this.model.setUnavailable(spec);
  }

  /** Withdraws what `setUnavailable` said for exactly this server type and location. */
  setAvailable(spec: Omit<UnavailableSpec, 'code'>): void {
    this.model.setAvailable(spec);
  }

  clearUnavailable(): void {
    this.model.clearUnavailable();
  }

  /**
   * Answers the next `count` matching calls with this error, after authentication and before
   * anything else (no rate-limit token is taken, nothing changes). `target`: a route name
   * ('create_server'), a path pattern below `/v1` where `*` or `{…}` stands for one segment
   * ('/servers/{id}'), or a RegExp tested on the path. `method` '*' matches any. Faults are
   * consumed in the order they were added.
   */
  failNext(method: string, target: string | RegExp, fault: FaultSpec): void {
    const count = fault.count ?? 1;
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`count must be a whole number >= 1, got ${count}`);
    this.faults.push({
      method: method.toUpperCase(),
      matches: matcherFor(target),
      error: new HcloudError(fault.code, fault.message ?? defaultMessage(fault.code), fault.status ?? statusFor(fault.code), fault.details ?? null),
      left: count,
    });
  }

  /**
   * How many calls of a route were made. `status`: only those answered with it; `code`: a string
   * counts only that error code, `true` any error, `false` only successes.
   */
  count(route: RouteName, filter: { status?: number; code?: string | boolean } = {}): number {
    return this.calls.filter((c) => {
      if (c.route !== route) return false;
      if (filter.status !== undefined && c.status !== filter.status) return false;
      if (filter.code === undefined) return true;
      if (filter.code === true) return c.code !== undefined;
      if (filter.code === false) return c.code === undefined;
      return c.code === filter.code;
    }).length;
  }

  // ---- introspection -----------------------------------------------------------------------

  /** The servers that exist now (deleting ones included, gone ones not), by ID. */
  servers(): FakeServer[] {
    const now = this.now();
    return this.model.all(now).map((s) => this.model.view(s, now));
  }

  server(id: number): FakeServer | undefined {
    const now = this.now();
    const s = this.model.find(id, now);
    return s && this.model.view(s, now);
  }

  serverByName(name: string): FakeServer | undefined {
    return this.servers().find((s) => s.name === name);
  }

  /** An action as GET /actions/{id} would show it now. */
  action(id: number): FakeAction | undefined {
    try {
      return this.model.actionView(this.model.action(id), this.now());
    } catch {
      return undefined;
    }
  }

  /** Puts a server in a status and pins it there (no timed transition moves it) until it is deleted. */
  setStatus(id: number, status: ServerStatus): FakeServer {
    const now = this.now();
    return this.model.view(this.model.setStatus(id, status, now), now);
  }

  /** As if the server were deleted in the Console: `deleting`, then gone after `deleteMs`; `onDelete` fires. Answers the delete action. */
  deleteExternally(id: number): FakeAction {
    const now = this.now();
    if (!this.model.find(id, now)) throw new Error(`FakeHcloud: no server ${id}`);
    return this.model.actionView(this.model.delete(id, now), now);
  }

  // ---- request handling --------------------------------------------------------------------

  private guard(hook: () => void): void {
    try {
      hook();
    } catch (e) {
      this.hookErrors.push(e);
    }
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    readBody(req, MAX_BODY, (text) => {
      const answer = this.answer(req, text);
      const delay = this.delayOf({ method: answer.call.method, path: answer.call.path, ...(answer.call.route ? { route: answer.call.route } : {}) });
      this.http.later(delay, () => {
        res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
        res.end(answer.body);
      });
    });
    req.on('error', () => res.destroy());
  }

  /** Acts on one request and records it; never throws. */
  private answer(req: IncomingMessage, rawBody: string | undefined): { status: number; body: string; headers: Record<string, string>; call: RecordedCall } {
    const at = this.now();
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', 'http://hcloud.invalid');
    const path = url.pathname.startsWith(`${BASE}/`) ? url.pathname.slice(BASE.length) : url.pathname;
    const matched = url.pathname.startsWith(`${BASE}/`) ? matchRoute(method, path) : undefined;
    const call: RecordedCall = { method, path, query: url.search.replace(/^\?/, ''), at, status: 0, ...(matched ? { route: matched.route } : {}) };
    this.calls.push(call);
    const headers: Record<string, string> = {};
    let status: number;
    let body: Json;
    try {
      ({ status, body } = this.dispatch(req, method, path, url.searchParams, matched, rawBody, headers, at));
    } catch (e) {
      const error = e instanceof HcloudError ? e : new HcloudError('server_error', `internal server error (${e instanceof Error ? e.message : String(e)})`);
      status = error.status;
      body = error.toJSON() as unknown as Json;
      call.code = error.code;
    }
    call.status = status;
    if (this.bucket) Object.assign(headers, this.rateLimitHeaders(this.bucket, at));
    return { status, body: JSON.stringify(body), headers, call };
  }

  private dispatch(
    req: IncomingMessage,
    method: string,
    path: string,
    query: URLSearchParams,
    matched: Matched | undefined,
    rawBody: string | undefined,
    headers: Record<string, string>,
    now: number,
  ): { status: number; body: Json } {
    const auth = req.headers.authorization;
    const token = typeof auth === 'string' && /^Bearer\s+/i.test(auth) ? auth.replace(/^Bearer\s+/i, '').trim() : undefined;
    if (token === undefined || !this.tokens.has(token)) throw errors.unauthorized();

    const fault = this.faults.find((f) => (f.method === '*' || f.method === method) && f.matches(path, matched?.route));
    if (fault) {
      if (--fault.left === 0) this.faults.splice(this.faults.indexOf(fault), 1);
      throw fault.error;
    }
    if (this.bucket && !this.bucket.tryTake()) throw errors.rateLimited(this.bucket.spec.burst);
    if (!matched) throw errors.notFound(`the requested resource ${method} ${BASE}${path} was not found`);
    if (matched.badParam !== undefined) throw invalidInput([{ name: 'id', messages: ['must be a positive integer'] }], `invalid input in field 'id': '${matched.badParam}' is not an ID`);
    const [id = 0, second = 0] = matched.params;
    const m = this.model;

    switch (matched.route) {
      case 'create_server': {
        const created = m.create(parseJson(rawBody), now);
        return {
          status: 201,
          body: {
            server: this.serverJson(created.server, now),
            action: this.actionJson(created.action, now),
            next_actions: created.nextActions.map((a) => this.actionJson(a, now)),
            root_password: created.rootPassword,
          },
        };
      }
      case 'list_servers': {
        const one = (k: string) => query.get(k) ?? undefined;
        const { servers, pagination } = m.list(
          {
            name: one('name'),
            labelSelector: one('label_selector'),
            status: query.getAll('status'),
            sort: query.getAll('sort'),
            page: one('page'),
            perPage: one('per_page'),
          },
          now,
        );
        headers.link = this.linkHeader(path, query, pagination.page, pagination.last_page);
        return { status: 200, body: { servers: servers.map((s) => this.serverJson(s, now)), meta: { pagination: { ...pagination } } } };
      }
      case 'get_server':
        return { status: 200, body: { server: this.serverJson(m.get(id, now), now) } };
      case 'update_server':
        return { status: 200, body: { server: this.serverJson(m.update(id, parseJson(rawBody), now), now) } };
      case 'delete_server':
        return { status: 200, body: { action: this.actionJson(m.delete(id, now), now) } };
      case 'get_server_action':
        return { status: 200, body: { action: this.actionJson(m.serverAction(id, second), now) } };
      case 'get_action':
        return { status: 200, body: { action: this.actionJson(m.action(id), now) } };
      case 'list_networks':
      case 'list_firewalls': {
        // By name only (what a client resolving a name asks); one page.
        const registry = matched.route === 'list_networks' ? this.networks : this.firewalls;
        const name = query.get('name');
        const found = [...registry].filter(([n]) => name === null || n === name).map(([n, i]) => ({ id: i, name: n, labels: {} }));
        const key = matched.route === 'list_networks' ? 'networks' : 'firewalls';
        return { status: 200, body: { [key]: found, meta: { pagination: { page: 1, per_page: 25, previous_page: null, next_page: null, last_page: 1, total_entries: found.length } } } };
      }
      case 'list_actions': {
        const ids = query.getAll('id');
        const bad = ids.filter((i) => !/^[1-9][0-9]*$/.test(i));
        if (ids.length === 0 || bad.length > 0) throw invalidInput([{ name: 'id', messages: ['one or more action IDs are required'] }]);
        const found = ids.map(Number).flatMap((i) => {
          try {
            return [m.action(i)];
          } catch {
            return [];
          }
        });
        return { status: 200, body: { actions: found.map((a) => this.actionJson(a, now)) } };
      }
    }
  }

  private serverJson(s: ServerRecord, now: number): Json {
    return serverJson(this.model.view(s, now), { type: s.type, image: s.image, location: s.location });
  }

  private actionJson(a: ActionRecord, now: number): Json {
    return actionJson(this.model.actionView(a, now));
  }

  private rateLimitHeaders(bucket: TokenBucket, now: number): Record<string, string> {
    const level = bucket.tokens();
    const limit = bucket.spec.burst;
    const fullAt = now + ((limit - level) / bucket.spec.refillPerSecond) * 1000;
    return {
      'ratelimit-limit': String(limit),
      'ratelimit-remaining': String(Math.floor(level)),
      'ratelimit-reset': String(Math.ceil(fullAt / 1000)),
    };
  }

  private linkHeader(path: string, query: URLSearchParams, page: number, lastPage: number): string {
    const at = (p: number) => {
      const q = new URLSearchParams(query);
      q.set('page', String(p));
      return `<${this.endpoint}${path}?${q.toString()}>`;
    };
    const links: string[] = [];
    if (page > 1) links.push(`${at(page - 1)}; rel="prev"`);
    if (page < lastPage) links.push(`${at(page + 1)}; rel="next"`);
    links.push(`${at(lastPage)}; rel="last"`);
    return links.join(', ');
  }
}

function parseJson(raw: string | undefined): unknown {
  if (raw === undefined) throw errors.jsonError();
  if (raw.trim() === '') return {};
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    throw errors.jsonError();
  }
}

const ROUTE_TABLE: Array<{ method: string; pattern: RegExp; route: RouteName }> = [
  { method: 'POST', pattern: /^\/servers$/, route: 'create_server' },
  { method: 'GET', pattern: /^\/servers$/, route: 'list_servers' },
  { method: 'GET', pattern: /^\/servers\/([^/]+)$/, route: 'get_server' },
  { method: 'PUT', pattern: /^\/servers\/([^/]+)$/, route: 'update_server' },
  { method: 'DELETE', pattern: /^\/servers\/([^/]+)$/, route: 'delete_server' },
  { method: 'GET', pattern: /^\/servers\/([^/]+)\/actions\/([^/]+)$/, route: 'get_server_action' },
  { method: 'GET', pattern: /^\/actions\/([^/]+)$/, route: 'get_action' },
  { method: 'GET', pattern: /^\/actions$/, route: 'list_actions' },
  { method: 'GET', pattern: /^\/networks$/, route: 'list_networks' },
  { method: 'GET', pattern: /^\/firewalls$/, route: 'list_firewalls' },
];

function matchRoute(method: string, path: string): Matched | undefined {
  for (const r of ROUTE_TABLE) {
    if (r.method !== method) continue;
    const m = r.pattern.exec(path);
    if (!m) continue;
    const raw = m.slice(1).map((p) => decodeURIComponent(p));
    const badParam = raw.find((p) => !/^[1-9][0-9]{0,15}$/.test(p));
    return { route: r.route, params: raw.map(Number), ...(badParam !== undefined ? { badParam } : {}) };
  }
  return undefined;
}

function matcherFor(target: string | RegExp): (path: string, route: RouteName | undefined) => boolean {
  if (target instanceof RegExp) return (path) => target.test(path);
  if ((ROUTES as readonly string[]).includes(target)) return (_path, route) => route === target;
  if (!target.startsWith('/')) throw new RangeError(`failNext target must be a route name (${ROUTES.join(', ')}), a path starting with '/', or a RegExp; got '${target}'`);
  const source = target
    .split('/')
    .map((seg) => (seg === '*' || /^\{[^}]*\}$/.test(seg) ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  const re = new RegExp(`^${source}$`);
  return (path) => re.test(path);
}
