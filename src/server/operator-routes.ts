/**
 * Operator controls over disruption (REST): drain, extend, cancel, force, protect. Every call is
 * validated before anything changes and audited with who asked; errors carry the reason
 * (400 bad input, 404 unknown instance, 409 the instance's state or a budget forbids it).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Clock } from '../clock/index.js';
import { parseDuration } from '../config/index.js';
import { InvalidRequestError } from '../errors/index.js';
import type { Reconciler } from '../reconciler/index.js';

const durationText = z.string({ error: 'must be a duration such as "10m"' }).transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === null || ms <= 0) {
    ctx.addIssue({ code: 'custom', message: `must be a duration such as "10m" (got ${JSON.stringify(text)})` });
    return z.NEVER;
  }
  return ms;
});

const drainBody = z.strictObject({ force: z.boolean({ error: 'force must be true or false' }).optional() }).optional();
const extendBody = z.strictObject({ by: durationText });
const protectBody = z
  .strictObject({
    for: durationText.optional(),
    until: z.iso.datetime({ offset: true, error: 'until must be an ISO-8601 time such as "2026-11-29T18:00:00Z"' }).optional(),
  })
  .refine((b) => (b.for === undefined) !== (b.until === undefined), { error: 'give exactly one of "for" and "until"' });

function parse<T>(schema: z.ZodType<T>, body: unknown, expected: string): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const message = result.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
  throw new InvalidRequestError(`invalid body: ${message} (expected ${expected})`);
}

export function registerOperatorRoutes(app: FastifyInstance, deps: { reconciler: Reconciler; clock: Clock; actorOf: (req: FastifyRequest) => string }): void {
  const { reconciler, clock, actorOf } = deps;
  const id = (req: FastifyRequest): string => (req.params as { id: string }).id;

  app.post('/v1/instances/:id/drain', async (req, reply) => {
    const body = parse(drainBody, req.body ?? undefined, '{"force": false}');
    const result = await reconciler.operator.requestDrain(id(req), { force: body?.force ?? false, actor: actorOf(req) });
    return reply.code(202).send({ ...result, replacementFirst: true });
  });

  app.post('/v1/instances/:id/drain-extend', async (req) => {
    const body = parse(extendBody, req.body, '{"by": "10m"}');
    const result = await reconciler.operator.extendDrain(id(req), body.by, actorOf(req));
    return { instanceId: result.instanceId, drainDeadline: result.drainDeadline.toISOString(), capped: result.capped };
  });

  app.post('/v1/instances/:id/drain-cancel', async (req) => {
    const result = await reconciler.operator.cancelDrain(id(req), actorOf(req));
    return { instanceId: result.instanceId, cancelled: true, heldUntil: result.heldUntil.toISOString() };
  });

  app.post('/v1/instances/:id/drain-force', async (req, reply) => {
    const result = await reconciler.operator.forceDrain(id(req), actorOf(req));
    return reply.code(202).send({ ...result, deleting: true });
  });

  app.put('/v1/instances/:id/protection', async (req) => {
    const body = parse(protectBody, req.body, '{"for": "2h"} or {"until": "<ISO time>"}');
    const until = body.for !== undefined ? new Date(clock.nowMs() + body.for) : new Date(Date.parse(body.until ?? ''));
    const result = await reconciler.operator.protect(id(req), until, actorOf(req));
    return { instanceId: result.instanceId, protectedUntil: result.protectedUntil.toISOString() };
  });

  app.delete('/v1/instances/:id/protection', async (req) => {
    const result = await reconciler.operator.unprotect(id(req), actorOf(req));
    return { ...result, protectedUntil: null };
  });
}
