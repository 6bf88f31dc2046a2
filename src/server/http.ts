/**
 * The admin API (fastify): JSON over HTTP, bearer-token auth, server-sent events.
 * Every mutating call validates first and then applies in one step: nothing is half-applied.
 */
import { timingSafeEqual } from 'node:crypto';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Clock, TimerHandle } from '../clock/index.js';
import { groupSettings, type ConfigLoader } from '../config/index.js';
import type { LeaderElector } from '../leader/index.js';
import type { DroverMetrics } from '../metrics/index.js';
import { EventType, type Logger, type Reconciler } from '../reconciler/index.js';
import { keys, type SizeOverride } from '../state/index.js';
import type { LocalDb } from '../store/index.js';
import { DroverError, type ErrorCode } from '../errors/index.js';
import type { AgentHub } from './agent-hub.js';
import { registerOperatorRoutes } from './operator-routes.js';
import type { BusEvent, EventBus } from './event-bus.js';
import { registerLeaderRouting } from './routing.js';
import { registerStatic } from './static.js';
import { auditView, groupView, instanceView, planView } from './views.js';

export interface HttpDeps {
  clock: Clock;
  logger: Logger;
  db: LocalDb;
  reconciler: Reconciler;
  configLoader: ConfigLoader;
  hub: AgentHub;
  bus: EventBus;
  metrics: DroverMetrics;
  elector: LeaderElector;
  /** Bearer token the API requires; null = open (the server then listens on loopback by default). */
  token: string | null;
  version: string;
  /** h-tls: serve HTTPS (and the agent endpoint as WSS) with these options (src/server/tls.ts); absent = plain HTTP. */
  https?: HttpsServerOptions | null;
}

class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** HTTP status for each error code of the catalogue. */
const STATUS_OF: Partial<Record<ErrorCode, number>> = { invalid: 400, config: 400, not_found: 404, conflict: 409, not_leader: 503, unavailable: 503 };

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const sizeBody = z.strictObject({ size: z.number({ error: 'size must be a number' }).int({ error: 'size must be a whole number' }).min(0, { error: 'size must be >= 0' }).max(100_000, { error: 'size must be <= 100000' }) });

function tokensEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Who asked, for the audit: the X-Drover-Actor header when it is a plain name, else "api". */
function actorOf(req: FastifyRequest): string {
  const raw = req.headers['x-drover-actor'];
  const value = Array.isArray(raw) ? raw[0] : raw;
  return value && /^[\w.@:-]{1,64}$/.test(value) ? `operator:${value}` : 'operator:api';
}

function zodMessage(error: z.ZodError): string {
  return error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
}

export async function buildHttpServer(deps: HttpDeps): Promise<FastifyInstance> {
  const { db, reconciler, configLoader, hub, bus, metrics, clock, logger } = deps;
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024, forceCloseConnections: true, ...(deps.https ? { https: deps.https } : {}) }); // h-tls: https

  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, req, reply) => {
    const status =
      err instanceof HttpError
        ? err.statusCode
        : err instanceof DroverError
          ? (STATUS_OF[err.code] ?? 500)
          : typeof err.statusCode === 'number' && err.statusCode >= 400
            ? err.statusCode
            : 500;
    if (status >= 500) logger.error({ method: req.method, url: req.url, err: err.message }, 'request failed');
    void reply.code(status).send({ error: status >= 500 ? `internal error: ${err.message}` : err.message });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0] ?? ''}` });
  });

  app.addHook('onRequest', async (req) => {
    // Browsers send Origin on cross-site requests: refuse any that is not this server.
    const origin = req.headers.origin;
    if (origin && origin !== 'null') {
      const host = req.headers.host;
      let sameOrigin: boolean;
      try {
        sameOrigin = new URL(origin).host === host;
      } catch {
        sameOrigin = false;
      }
      if (!sameOrigin) throw new HttpError(403, `requests from origin ${origin} are refused`);
    } else if (origin === 'null') {
      throw new HttpError(403, 'requests from an opaque origin are refused');
    }
    if (!deps.token || !req.url.startsWith('/v1/')) return;
    const auth = req.headers.authorization;
    const given = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : '';
    if (!given || !tokensEqual(given, deps.token)) throw new HttpError(401, 'missing or wrong bearer token');
  });
  // HA: a replica that does not lead redirects mutating calls to the leader (routing.ts).
  registerLeaderRouting(app, deps.elector);
  app.addHook('onResponse', async (req, reply) => {
    metrics.httpRequests.inc({ method: req.method, route: req.routeOptions.url ?? 'unknown', code: String(reply.statusCode) });
    logger.debug({ method: req.method, route: req.routeOptions.url, status: reply.statusCode }, 'request served');
  });

  // ---- health and metrics ---------------------------------------------------------------------
  app.get('/healthz', async () => ({ ok: true, leader: deps.elector.isLeader(), version: deps.version, configError: configLoader.lastError?.message ?? null }));
  app.get('/metrics', async (_req, reply) => {
    const { contentType, body } = await metrics.render();
    return reply.type(contentType).send(body);
  });

  // ---- groups ---------------------------------------------------------------------------------
  const groupInfo = (tenant: string, group: string): ReturnType<typeof groupView> => {
    const plan = reconciler.plan(tenant, group);
    const config = configLoader.getCurrent();
    const settings = groupSettings(config, tenant, group);
    const stored = reconciler.operatorState.get<SizeOverride>(keys.size(tenant, group));
    const override = settings && stored && stored.base === settings.size ? stored.size : null;
    return groupView(plan, {
      configuredSize: settings?.size ?? null,
      sizeOverride: override,
      template: settings?.templateName ?? null,
      templateHash: settings?.templateHash ?? null,
    });
  };

  app.get('/v1/groups', async () => reconciler.planAll().map((p) => groupInfo(p.tenant, p.group)));

  const requireGroup = (params: unknown, mustBeConfigured: boolean): { tenant: string; group: string } => {
    const { tenant, group } = params as { tenant: string; group: string };
    if (!NAME.test(tenant) || !NAME.test(group)) throw new HttpError(400, `not a group: ${tenant}/${group}`);
    const configured = groupSettings(configLoader.getCurrent(), tenant, group) !== null;
    if (!configured && (mustBeConfigured || db.liveInstances(tenant, group).length === 0)) {
      throw new HttpError(404, `group ${tenant}/${group} is not configured`);
    }
    return { tenant, group };
  };

  app.get('/v1/groups/:tenant/:group', async (req) => {
    const { tenant, group } = requireGroup(req.params, false);
    return groupInfo(tenant, group);
  });

  app.get('/v1/groups/:tenant/:group/plan', async (req) => {
    const { tenant, group } = requireGroup(req.params, false);
    // ?size=N: the dry run for a size the group does not have yet (a preview before scaling).
    const sizeText = (req.query as Record<string, string | undefined>).size;
    if (sizeText === undefined) return planView(reconciler.plan(tenant, group));
    const parsed = sizeBody.safeParse({ size: /^-?\d+$/.test(sizeText) ? Number(sizeText) : sizeText });
    if (!parsed.success) throw new HttpError(400, `invalid size: ${zodMessage(parsed.error)}`);
    return planView(reconciler.plan(tenant, group, { size: parsed.data.size }));
  });

  app.put('/v1/groups/:tenant/:group/size', async (req) => {
    const { tenant, group } = requireGroup(req.params, true);
    const parsed = sizeBody.safeParse(req.body);
    if (!parsed.success) throw new HttpError(400, `invalid body: ${zodMessage(parsed.error)} (expected {"size": n})`);
    const settings = groupSettings(configLoader.getCurrent(), tenant, group);
    if (!settings) throw new HttpError(404, `group ${tenant}/${group} is not configured`);
    const before = reconciler.effectiveSettings(configLoader.getCurrent(), tenant, group)?.size ?? settings.size;
    const actor = actorOf(req);
    const now = clock.now();
    const override: SizeOverride = { size: parsed.data.size, base: settings.size, at: now.toISOString(), by: actor };
    await reconciler.operatorState.set(keys.size(tenant, group), override);
    db.appendAudit({ tenant, group, at: now, instanceId: null, action: 'scale', reason: 'operator', actor, detail: `size ${before} -> ${parsed.data.size}`, epoch: deps.elector.epoch() });
    reconciler.enqueue({ type: EventType.GroupChanged, tenant, groupKey: group, cause: 'operator' });
    return { tenant, group, size: parsed.data.size, previousSize: before };
  });

  // ---- instances ------------------------------------------------------------------------------
  app.get('/v1/instances', async (req) => {
    const q = req.query as Record<string, string | undefined>;
    const includeDeleted = q.includeDeleted === 'true' || q.includeDeleted === '1';
    return db
      .listInstances({ ...(q.tenant ? { tenant: q.tenant } : {}), ...(q.group ? { group: q.group } : {}), includeDeleted })
      .map((r) => instanceView(r, hub.isConnected(r.id), reconciler.operator.protectedUntil(r.id)));
  });

  const requireInstance = (params: unknown) => {
    const { id } = params as { id: string };
    const record = db.getInstance(id);
    if (!record) throw new HttpError(404, `instance ${id} not found`);
    return record;
  };

  app.get('/v1/instances/:id', async (req) => {
    const record = requireInstance(req.params);
    return instanceView(record, hub.isConnected(record.id), reconciler.operator.protectedUntil(record.id));
  });

  app.post('/v1/instances/:id/drain-ack', async (req, reply) => {
    const record = requireInstance(req.params);
    if (record.status !== 'draining') throw new HttpError(409, `instance ${record.id} is not draining (status ${record.status})`);
    reconciler.enqueue({ type: EventType.DrainAcked, tenant: record.tenant, groupKey: record.group, instanceId: record.id, cause: actorOf(req) });
    return reply.code(202).send({ instanceId: record.id, acknowledged: true });
  });

  registerOperatorRoutes(app, { reconciler, clock, actorOf });

  // ---- audit ----------------------------------------------------------------------------------
  app.get('/v1/audit', async (req) => {
    const q = req.query as Record<string, string | undefined>;
    let tenant = q.tenant;
    let group = q.group;
    if (group?.includes('/')) [tenant, group] = group.split('/', 2) as [string, string];
    const limit = q.limit === undefined ? 500 : Number(q.limit);
    const after = q.after === undefined ? undefined : Number(q.after);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new HttpError(400, 'limit must be a whole number from 1 to 10000');
    if (after !== undefined && !Number.isInteger(after)) throw new HttpError(400, 'after must be an audit sequence number');
    return db
      .listAudit({ ...(q.instance ? { instanceId: q.instance } : {}), ...(tenant ? { tenant } : {}), ...(group ? { group } : {}), ...(after !== undefined ? { afterSeq: after } : {}), limit })
      .map(auditView);
  });

  // ---- events (SSE) ---------------------------------------------------------------------------
  app.get('/v1/events', (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    const write = (event: BusEvent): void => {
      res.write(`${event.id ? `id: ${event.id}\n` : ''}event: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`);
    };
    res.write('retry: 2000\n\n');
    res.write(`event: hello\ndata: ${JSON.stringify({ leader: deps.elector.isLeader(), serverTime: clock.now().toISOString() })}\n\n`);
    // Resume: replay audit entries the client missed.
    const lastId = Number(req.headers['last-event-id']);
    if (Number.isInteger(lastId) && lastId > 0) {
      for (const entry of db.listAudit({ afterSeq: lastId, limit: 10_000 })) write({ type: 'audit', id: String(entry.seq), data: auditView(entry) });
    }
    const unsubscribe = bus.subscribe(write);
    let heartbeat: TimerHandle | undefined;
    const beat = (): void => {
      heartbeat = clock.schedule(clock.nowMs() + 15_000, () => {
        res.write(': keep-alive\n\n');
        beat();
      });
    };
    beat();
    const cleanup = (): void => {
      unsubscribe();
      heartbeat?.cancel();
    };
    req.raw.on('close', cleanup);
    res.on('error', cleanup);
  });

  // ---- the web dashboard (static files at /) ----------------------------------------------------
  registerStatic(app);

  // ---- agents (WebSocket upgrade on the same port) --------------------------------------------
  app.server.on('upgrade', (req, socket, head) => {
    if (!hub.handleUpgrade(req, socket, head)) socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
  });

  await app.ready();
  return app;
}
