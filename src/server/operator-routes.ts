/**
 * Operator controls over disruption (REST): drain, extend, cancel, force, protect. Every call is
 * validated before anything changes and audited with who asked; errors carry the reason
 * (400 bad input, 404 unknown instance, 409 the instance's state or a budget forbids it).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Clock } from '../clock/index.js';
import { formatDuration, parseDuration } from '../config/index.js';
import { InvalidRequestError } from '../errors/index.js';
import type { Reconciler } from '../reconciler/index.js';
import type { LocalDb } from '../store/index.js';
import { actorOf } from './auth.js';
import { visibleInstance } from './api-routes.js';

/** The longest one request may extend a drain or protect an instance by. */
export const MAX_REQUEST_DURATION_MS = 30 * 86_400_000;

const durationText = z.string({ error: 'must be a duration such as "10m"' }).max(64, { error: 'must be a duration such as "10m"' }).transform((text, ctx) => {
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

function parse<T>(schema: z.ZodType<T>, body: unknown, expected: string): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const message = result.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
  throw new InvalidRequestError(`invalid body: ${message} (expected ${expected})`);
}

export function registerOperatorRoutes(app: FastifyInstance, deps: { reconciler: Reconciler; db: LocalDb; clock: Clock }): void {
  const { reconciler, clock, db } = deps;
  /** The instance named in the path, if the caller may see it (else 404, as for one that does not exist). */
  const id = (req: FastifyRequest): string => visibleInstance(db, req, (req.params as { id: string }).id).id;
  const operator = { config: { access: 'operator' as const } };

  app.post('/v1/instances/:id/drain', operator, async (req, reply) => {
    const body = parse(drainBody, req.body ?? undefined, '{"force": false}');
    const result = await reconciler.operator.requestDrain(id(req), { force: body?.force ?? false, actor: actorOf(req) });
    return reply.code(202).send({ ...result, replacementFirst: true });
  });

  app.post('/v1/instances/:id/drain-extend', operator, async (req) => {
    const body = parse(extendBody, req.body, '{"by": "10m"}');
    const result = await reconciler.operator.extendDrain(id(req), body.by, actorOf(req));
    return { instanceId: result.instanceId, drainDeadline: result.drainDeadline.toISOString(), capped: result.capped };
  });

  app.post('/v1/instances/:id/drain-cancel', operator, async (req) => {
    const result = await reconciler.operator.cancelDrain(id(req), actorOf(req));
    return { instanceId: result.instanceId, cancelled: true, heldUntil: result.heldUntil.toISOString() };
  });

  app.post('/v1/instances/:id/drain-force', operator, async (req, reply) => {
    const result = await reconciler.operator.forceDrain(id(req), actorOf(req));
    return reply.code(202).send({ ...result, deleting: true });
  });

  app.put('/v1/instances/:id/protection', operator, async (req) => {
    const body = parse(protectBody, req.body, '{"for": "2h"} or {"until": "<ISO time>"}');
    const until = body.for !== undefined ? new Date(clock.nowMs() + body.for) : new Date(Date.parse(body.until ?? ''));
    const result = await reconciler.operator.protect(id(req), until, actorOf(req));
    return { instanceId: result.instanceId, protectedUntil: result.protectedUntil.toISOString() };
  });

  app.delete('/v1/instances/:id/protection', operator, async (req) => {
    const result = await reconciler.operator.unprotect(id(req), actorOf(req));
    return { ...result, protectedUntil: null };
  });
}
