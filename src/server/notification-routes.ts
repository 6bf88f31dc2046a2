/**
 * Webhook endpoints, their delivery log and dead letters (REST). Endpoints serve every tenant
 * (or a list of them) and their URLs can carry a receiver's secret (Slack's do), so the endpoint
 * list and the server-wide actions need a token not limited to tenants, and a URL is shown as its
 * origin only. The delivery log and a single redelivery follow the tenant rules of the audit.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Clock } from '../clock/index.js';
import { ConflictError, ForbiddenError, NotFoundError } from '../errors/index.js';
import type { NotificationEvent, Notifier } from '../notifications/index.js';
import { OUTBOX_STATES, type LocalDb, type OutboxRow } from '../store/index.js';
import { tenantFilter } from './api-routes.js';
import { ANONYMOUS_ADMIN, actorOf, seesTenant, type Principal } from './auth.js';
import { defineRoute } from './route-spec.js';
import { bulkRedeliveryViewSchema, deliveryViewSchema, notificationEndpointViewSchema, redeliveryViewSchema, testEventViewSchema, type DeliveryView } from './views.js';

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

/** Query parameters arrive as strings; each is checked here (400 naming it). */
const deliveryQuery = z.strictObject({
  endpoint: z.string().regex(NAME, { error: 'endpoint must be an endpoint name' }).optional(),
  state: z.enum(OUTBOX_STATES, { error: `state must be one of ${OUTBOX_STATES.join(', ')}` }).optional(),
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

const nameParams = z.object({ name: z.string().max(200).meta({ description: 'The endpoint\'s name in the config.' }) });
const NOT_ALL_TENANTS = 'The token is limited to tenants: endpoints serve every tenant.';

export function registerNotificationRoutes(app: FastifyInstance, deps: NotificationRouteDeps): void {
  const { db, notifier, clock } = deps;

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/notifications',
      access: 'viewer',
      tag: 'notifications',
      summary: 'Webhook endpoints, their breakers and queues',
      responses: { 200: { description: 'The endpoints in the config.', schema: z.array(notificationEndpointViewSchema) } },
      errors: { 403: NOT_ALL_TENANTS },
    },
    async ({ req }) => {
      requireAllTenants(req, 'listing notification endpoints');
      const stats = new Map(db.outbox.stats().map((s) => [s.endpoint, s]));
      return notifier.status().map((e) => {
        const s = stats.get(e.name);
        return { ...e, url: shownUrl(e.url), pending: s?.pending ?? 0, dead: s?.dead ?? 0, oldestPendingAt: iso(s?.oldestPendingAt ?? null) };
      });
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/notifications/deliveries',
      access: 'viewer',
      tag: 'notifications',
      summary: 'The delivery log, newest first',
      query: deliveryQuery,
      invalid: (part, issues) => `invalid ${part}: ${issues}`,
      responses: { 200: { description: 'A page of deliveries.', schema: z.array(deliveryViewSchema) } },
    },
    async ({ req, query: q }) => {
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
    },
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/v1/notifications/:name/test',
      access: 'operator',
      tag: 'notifications',
      summary: 'Send a test event to one endpoint',
      params: nameParams,
      body: emptyBody,
      invalid: (part, issues, req) => `sending a test event to ${(req.params as { name: string }).name}: invalid ${part}: ${issues} (expected none or {})`,
      responses: { 202: { description: 'The test event is queued.', schema: testEventViewSchema } },
      errors: { 403: NOT_ALL_TENANTS, 404: 'No endpoint by that name.' },
    },
    async ({ req, reply, params }) => {
      const { name } = params;
      requireAllTenants(req, `sending a test event to ${name}`);
      const eventId = NAME.test(name) ? notifier.sendTest(name, actorOf(req)) : null;
      if (eventId === null) throw new NotFoundError(`notification endpoint ${name} is not configured`);
      void reply.code(202);
      return { endpoint: name, eventId };
    },
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/v1/notifications/deliveries/:id/redeliver',
      access: 'operator',
      tag: 'notifications',
      summary: 'Redeliver one dead letter',
      params: z.object({ id: z.string().regex(/^\d{1,15}$/, { error: 'must be a delivery id' }) }),
      invalid: (_part, _issues, req) => `not a delivery id: ${(req.params as { id: string }).id}`,
      responses: { 202: { description: 'It is pending again.', schema: redeliveryViewSchema } },
      errors: { 404: 'No such delivery, or one of a tenant the token may not see.', 409: 'It is not a dead letter, or its endpoint left the config.' },
    },
    async ({ req, reply, params }) => {
      const id = Number(params.id);
      const row = db.outbox.get(id);
      const principal = principalOf(req);
      const visible = row !== null && (principal.tenants === null || (row.tenant !== null && seesTenant(principal, row.tenant)));
      if (!visible) throw new NotFoundError(`delivery ${id} not found`);
      const result = notifier.redeliver(id);
      if (result === 'notDead') throw new ConflictError(`delivery ${id} is not a dead letter (state ${row.state})`);
      if (result === 'noEndpoint') throw new ConflictError(`delivery ${id} is for endpoint ${row.endpoint}, which is no longer in the config`);
      if (result === 'notFound') throw new NotFoundError(`delivery ${id} not found`);
      void reply.code(202);
      return { id, eventId: row.eventId, endpoint: row.endpoint, state: 'pending' as const };
    },
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/v1/notifications/:name/redeliver',
      access: 'operator',
      tag: 'notifications',
      summary: "Redeliver an endpoint's dead letters, oldest first",
      params: nameParams,
      responses: { 202: { description: 'How many are pending again.', schema: bulkRedeliveryViewSchema } },
      errors: { 403: NOT_ALL_TENANTS, 404: 'No endpoint by that name.' },
    },
    async ({ req, reply, params }) => {
      const { name } = params;
      requireAllTenants(req, `redelivering the dead letters of ${name}`);
      if (!NAME.test(name) || !notifier.status().some((e) => e.name === name)) throw new NotFoundError(`notification endpoint ${name} is not configured`);
      // Oldest first, so their order per instance is kept.
      const dead = db.outbox.list({ endpoint: name, state: 'dead', limit: MAX_BULK_REDELIVER }).reverse();
      let moved = 0;
      for (const row of dead) if (notifier.redeliver(row.id) === 'ok') moved++;
      void reply.code(202);
      return { endpoint: name, redelivered: moved, at: clock.now().toISOString() };
    },
  );
}
