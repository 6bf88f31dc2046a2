/**
 * Operator controls over disruption (REST): drain, extend, cancel, force, protect. Every call is
 * validated before anything changes and audited with who asked; errors carry the reason
 * (400 bad input, 404 unknown instance, 409 the instance's state or a budget forbids it).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Clock } from '../clock/index.js';
import { formatDuration, parseDuration } from '../config/index.js';
import type { Reconciler } from '../reconciler/index.js';
import type { LocalDb } from '../store/index.js';
import { actorOf } from './auth.js';
import { instanceParams, visibleInstance } from './api-routes.js';
import { defineRoute } from './route-spec.js';
import { isoTime } from './views.js';

/** The longest one request may extend a drain or protect an instance by. */
export const MAX_REQUEST_DURATION_MS = 30 * 86_400_000;

const durationText = z
  .string({ error: 'must be a duration such as "10m"' })
  .meta({ description: `A duration such as "10m", "2h" or "1d" (at most ${formatDuration(MAX_REQUEST_DURATION_MS)}).` }).max(64, { error: 'must be a duration such as "10m"' }).transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === null || ms <= 0) {
    ctx.addIssue({ code: 'custom', message: `must be a duration such as "10m" (got ${JSON.stringify(text)})` });
    return z.NEVER;
  }
  if (ms > MAX_REQUEST_DURATION_MS) {
    ctx.addIssue({ code: 'custom', message: `must be at most ${formatDuration(MAX_REQUEST_DURATION_MS)} (got ${JSON.stringify(text)})` });
    return z.NEVER;
  }
  return ms;
});

const drainBody = z.strictObject({ force: z.boolean({ error: 'force must be true or false' }).optional() }).optional();
const extendBody = z.strictObject({ by: durationText });
const protectBody = z
  .strictObject({
    for: durationText.optional(),
    until: z.iso
      .datetime({ offset: true, error: 'until must be an ISO-8601 time such as "2026-11-29T18:00:00Z"' })
      .refine((text) => Number.isFinite(Date.parse(text)), { error: 'until must be a time that exists' })
      .optional(),
  })
  .refine((b) => (b.for === undefined) !== (b.until === undefined), { error: 'give exactly one of "for" and "until"' });

const expecting =
  (expected: string) =>
  (part: string, issues: string): string =>
    `invalid ${part}: ${issues}${part === 'body' ? ` (expected ${expected})` : ''}`;

const NO_INSTANCE = 'No such instance, or one of a tenant the token may not see.';

const drainResultSchema = z
  .strictObject({
    instanceId: z.string(),
    force: z.boolean().meta({ description: 'The drain goes ahead even past the disruption budget.' }),
    replacementFirst: z.literal(true).meta({ description: 'A replacement is created before the instance leaves.' }),
  })
  .meta({ id: 'DrainRequestResult' });

export function registerOperatorRoutes(app: FastifyInstance, deps: { reconciler: Reconciler; db: LocalDb; clock: Clock }): void {
  const { reconciler, clock, db } = deps;
  /** The instance named in the path, if the caller may see it (else 404, as for one that does not exist). */
  const id = (req: FastifyRequest, params: { id: string }): string => visibleInstance(db, req, params.id).id;

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/v1/instances/:id/drain',
      access: 'operator',
      tag: 'instances',
      summary: 'Drain an instance (its replacement first)',
      description: 'With `force`, even past the disruption budget. Audited.',
      params: instanceParams,
      body: drainBody,
      invalid: expecting('{"force": false}'),
      responses: { 202: { description: 'The drain is requested.', schema: drainResultSchema } },
      errors: { 404: NO_INSTANCE, 409: "The instance's state or a disruption budget forbids it." },
    },
    async ({ req, reply, params, body }) => {
      const result = await reconciler.operator.requestDrain(id(req, params), { force: body?.force ?? false, actor: actorOf(req) });
      void reply.code(202);
      return { ...result, replacementFirst: true as const };
    },
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/v1/instances/:id/drain-extend',
      access: 'operator',
      tag: 'instances',
      summary: "Extend a drain's deadline",
      params: instanceParams,
      body: extendBody,
      invalid: expecting('{"by": "10m"}'),
      responses: { 200: { description: 'The new deadline; `capped` when the group\'s limit cut it short.', schema: z.strictObject({ instanceId: z.string(), drainDeadline: isoTime, capped: z.boolean() }).meta({ id: 'DrainExtendResult' }) } },
      errors: { 404: NO_INSTANCE, 409: 'The instance is not draining.' },
    },
    async ({ req, params, body }) => {
      const result = await reconciler.operator.extendDrain(id(req, params), body.by, actorOf(req));
      return { instanceId: result.instanceId, drainDeadline: result.drainDeadline.toISOString(), capped: result.capped };
    },
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/v1/instances/:id/drain-cancel',
      access: 'operator',
      tag: 'instances',
      summary: 'Cancel a drain (the instance serves again)',
      params: instanceParams,
      responses: { 200: { description: 'Cancelled; it is held from another drain until `heldUntil`.', schema: z.strictObject({ instanceId: z.string(), cancelled: z.literal(true), heldUntil: isoTime }).meta({ id: 'DrainCancelResult' }) } },
      errors: { 404: NO_INSTANCE, 409: 'The instance is not draining, or its drain cannot be cancelled.' },
    },
    async ({ req, params }) => {
      const result = await reconciler.operator.cancelDrain(id(req, params), actorOf(req));
      return { instanceId: result.instanceId, cancelled: true as const, heldUntil: result.heldUntil.toISOString() };
    },
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/v1/instances/:id/drain-force',
      access: 'operator',
      tag: 'instances',
      summary: 'End a drain now: delete the instance',
      params: instanceParams,
      responses: { 202: { description: 'The instance is being deleted.', schema: z.strictObject({ instanceId: z.string(), deleting: z.literal(true) }).meta({ id: 'DrainForceResult' }) } },
      errors: { 404: NO_INSTANCE, 409: 'The instance is not draining.' },
    },
    async ({ req, reply, params }) => {
      const result = await reconciler.operator.forceDrain(id(req, params), actorOf(req));
      void reply.code(202);
      return { ...result, deleting: true as const };
    },
  );

  const protectionSchema = z.strictObject({ instanceId: z.string(), protectedUntil: isoTime.nullable() }).meta({ id: 'ProtectionResult' });

  defineRoute(
    app,
    {
      method: 'PUT',
      url: '/v1/instances/:id/protection',
      access: 'operator',
      tag: 'instances',
      summary: 'Protect an instance from voluntary disruption',
      params: instanceParams,
      body: protectBody,
      invalid: expecting('{"for": "2h"} or {"until": "<ISO time>"}'),
      responses: { 200: { description: 'Protected until then.', schema: protectionSchema } },
      errors: { 404: NO_INSTANCE, 409: "The instance's state forbids it." },
    },
    async ({ req, params, body }) => {
      const until = body.for !== undefined ? new Date(clock.nowMs() + body.for) : new Date(Date.parse(body.until ?? ''));
      const result = await reconciler.operator.protect(id(req, params), until, actorOf(req));
      return { instanceId: result.instanceId, protectedUntil: result.protectedUntil.toISOString() };
    },
  );

  defineRoute(
    app,
    {
      method: 'DELETE',
      url: '/v1/instances/:id/protection',
      access: 'operator',
      tag: 'instances',
      summary: "Remove an instance's protection",
      params: instanceParams,
      responses: { 200: { description: 'No longer protected.', schema: protectionSchema } },
      errors: { 404: NO_INSTANCE },
    },
    async ({ req, params }) => {
      const result = await reconciler.operator.unprotect(id(req, params), actorOf(req));
      return { ...result, protectedUntil: null };
    },
  );
}
