/**
 * Webhook endpoints, their delivery log and dead letters (REST). Endpoints serve every tenant
 * (or a list of them) and their URLs can carry a receiver's secret (Slack's do), so the endpoint
 * list and the server-wide actions need a token not limited to tenants, and a URL is shown as its
 * origin only. The delivery log and a single redelivery follow the tenant rules of the audit.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Clock } from '../clock/index.js';
import { ConflictError, ForbiddenError, InvalidRequestError, NotFoundError } from '../errors/index.js';
import type { NotificationEvent, Notifier } from '../notifications/index.js';
import { OUTBOX_STATES, type LocalDb, type OutboxRow, type OutboxState } from '../store/index.js';
import { tenantFilter, zodMessage } from './api-routes.js';
import { ANONYMOUS_ADMIN, actorOf, seesTenant, type Principal } from './auth.js';
import type { BulkRedeliveryView, DeliveryView, NotificationEndpointView, RedeliveryView, TestEventView } from './views.js';

export interface NotificationRouteDeps {
  db: LocalDb;
  notifier: Notifier;
  clock: Clock;
}

/** Most rows one page of the delivery log gives. */
export const MAX_DELIVERY_PAGE = 1_000;
/** Most dead letters one bulk redelivery moves. */
export const MAX_BULK_REDELIVER = 10_000;

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

const deliveryQuery = z.strictObject({
  endpoint: z.string().regex(NAME, { error: 'endpoint must be an endpoint name' }).optional(),
  state: z.enum(OUTBOX_STATES as [OutboxState, ...OutboxState[]], { error: `state must be one of ${OUTBOX_STATES.join(', ')}` }).optional(),
  event: z.string().max(200, { error: 'event must be an event id' }).optional(),
  limit: z
    .string()
    .regex(/^\d{1,5}$/, { error: `limit must be a whole number from 1 to ${MAX_DELIVERY_PAGE}` })
    .transform(Number)
    .refine((n) => n >= 1 && n <= MAX_DELIVERY_PAGE, { error: `limit must be a whole number from 1 to ${MAX_DELIVERY_PAGE}` })
    .optional(),
  before: z.string().regex(/^\d{1,15}$/, { error: 'before must be a delivery id' }).transform(Number).optional(),
});

const emptyBody = z.strictObject({}).optional();

// The answers' shapes live in views.ts (the dashboard may import only that file); the CLI reads them from here too.
export type { BulkRedeliveryView, DeliveryView, NotificationEndpointView, RedeliveryView, TestEventView } from './views.js';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function deliveryView(row: OutboxRow): DeliveryView {
  return {
    id: row.id,
    eventId: row.eventId,
    eventType: row.eventType,
    endpoint: row.endpoint,
    tenant: row.tenant,
    state: row.state,
    attempts: row.attempts,
    createdAt: new Date(row.createdAt).toISOString(),
    lastAttemptAt: iso(row.lastAttemptAt),
    nextAttemptAt: row.state === 'pending' ? iso(row.nextAttemptAt) : null,
    giveUpAt: row.state === 'pending' ? iso(row.giveUpAt) : null,
    lastStatus: row.lastStatus,
    lastError: row.lastError,
    deliveredAt: iso(row.deliveredAt),
    latencyMs: row.deliveredAt === null ? null : row.deliveredAt - row.createdAt,
    event: JSON.parse(row.payload) as NotificationEvent,
  };
}

/** A URL as shown: its origin, so a secret in its path or query is never echoed. */
export function shownUrl(url: string): string {
  const u = new URL(url);
  return u.pathname === '/' && !u.search ? u.origin : `${u.origin}/…`;
}

const principalOf = (req: FastifyRequest): Principal => req.principal ?? ANONYMOUS_ADMIN;

function requireAllTenants(req: FastifyRequest, doing: string): void {
  if (principalOf(req).tenants !== null) throw new ForbiddenError(`${doing}: notification endpoints serve every tenant; this needs a token not limited to tenants`);
}

export function registerNotificationRoutes(app: FastifyInstance, deps: NotificationRouteDeps): void {
  const { db, notifier, clock } = deps;
  const viewer = { config: { access: 'viewer' as const } };
  const operator = { config: { access: 'operator' as const } };

  app.get('/v1/notifications', viewer, async (req): Promise<NotificationEndpointView[]> => {
    requireAllTenants(req, 'listing notification endpoints');
    const stats = new Map(db.outbox.stats().map((s) => [s.endpoint, s]));
    return notifier.status().map((e) => {
      const s = stats.get(e.name);
      return { ...e, url: shownUrl(e.url), pending: s?.pending ?? 0, dead: s?.dead ?? 0, oldestPendingAt: iso(s?.oldestPendingAt ?? null) };
    });
  });

  app.get('/v1/notifications/deliveries', viewer, async (req): Promise<DeliveryView[]> => {
    const parsed = deliveryQuery.safeParse(req.query ?? {});
    if (!parsed.success) throw new InvalidRequestError(`invalid query: ${zodMessage(parsed.error)}`);
    const q = parsed.data;
    const tenants = tenantFilter(principalOf(req));
    return db.outbox
      .list({
        ...(q.endpoint ? { endpoint: q.endpoint } : {}),
        ...(q.state ? { state: q.state } : {}),
        ...(q.event ? { eventId: q.event } : {}),
        ...(q.before !== undefined ? { beforeId: q.before } : {}),
        ...(tenants ? { tenants } : {}),
        limit: q.limit ?? 100,
      })
      .map(deliveryView);
  });

  app.post('/v1/notifications/:name/test', operator, async (req, reply) => {
    const { name } = req.params as { name: string };
    requireAllTenants(req, `sending a test event to ${name}`);
    const parsed = emptyBody.safeParse(req.body ?? undefined);
    if (!parsed.success) throw new InvalidRequestError(`sending a test event to ${name}: invalid body: ${zodMessage(parsed.error)} (expected none or {})`);
    const eventId = NAME.test(name) ? notifier.sendTest(name, actorOf(req)) : null;
    if (eventId === null) throw new NotFoundError(`notification endpoint ${name} is not configured`);
    const answer: TestEventView = { endpoint: name, eventId };
    return reply.code(202).send(answer);
  });

  app.post('/v1/notifications/deliveries/:id/redeliver', operator, async (req, reply) => {
    const text = (req.params as { id: string }).id;
    if (!/^\d{1,15}$/.test(text)) throw new InvalidRequestError(`not a delivery id: ${text}`);
    const id = Number(text);
    const row = db.outbox.get(id);
    const principal = principalOf(req);
    const visible = row !== null && (principal.tenants === null || (row.tenant !== null && seesTenant(principal, row.tenant)));
    if (!visible) throw new NotFoundError(`delivery ${id} not found`);
    const result = notifier.redeliver(id);
    if (result === 'notDead') throw new ConflictError(`delivery ${id} is not a dead letter (state ${row.state})`);
    if (result === 'noEndpoint') throw new ConflictError(`delivery ${id} is for endpoint ${row.endpoint}, which is no longer in the config`);
    if (result === 'notFound') throw new NotFoundError(`delivery ${id} not found`);
    const answer: RedeliveryView = { id, eventId: row.eventId, endpoint: row.endpoint, state: 'pending' };
    return reply.code(202).send(answer);
  });

  app.post('/v1/notifications/:name/redeliver', operator, async (req, reply) => {
    const { name } = req.params as { name: string };
    requireAllTenants(req, `redelivering the dead letters of ${name}`);
    if (!NAME.test(name) || !notifier.status().some((e) => e.name === name)) throw new NotFoundError(`notification endpoint ${name} is not configured`);
    // Oldest first, so their order per instance is kept.
    const dead = db.outbox.list({ endpoint: name, state: 'dead', limit: MAX_BULK_REDELIVER }).reverse();
    let moved = 0;
    for (const row of dead) if (notifier.redeliver(row.id) === 'ok') moved++;
    const answer: BulkRedeliveryView = { endpoint: name, redelivered: moved, at: clock.now().toISOString() };
    return reply.code(202).send(answer);
  });
}
