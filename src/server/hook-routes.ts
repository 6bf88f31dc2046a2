/**
 * Lifecycle hooks (REST): completing an instance's launch hook.
 *
 * `POST /v1/instances/{id}/hooks/launch` with `{"result": "continue" | "abandon"}` (operator
 * role). A token limited to some tenants names only their instances (another tenant's is a 404,
 * as one that does not exist). 409 when no launch hook is pending on the instance (its group had
 * none when it was created, it was completed already, or it is not running). The instance itself
 * completes it with `drover self ready` (through its agent, src/app/drover-server.ts); a hook
 * nobody completes times out as its group's `hooks.launch.onTimeout` says (the plan).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { InvalidRequestError, NotFoundError } from '../errors/index.js';
import type { Reconciler } from '../reconciler/index.js';
import type { LocalDb } from '../store/index.js';
import { ANONYMOUS_ADMIN, actorOf, seesTenant } from './auth.js';

export interface HookRouteDeps {
  reconciler: Reconciler;
  db: LocalDb;
}

/** The longest instance id the route looks up (ids are far shorter; longer is not one). */
const MAX_ID_LENGTH = 200;

export const launchHookBody = z.strictObject(
  { result: z.enum(['continue', 'abandon'], { error: 'result must be "continue" or "abandon"' }) },
  // (Only for a body that is no object: an unknown field keeps zod's message, which names it.)
  { error: (issue) => (issue.code === 'invalid_type' ? 'the body must be a JSON object such as {"result": "continue"}' : undefined) },
);

/** The answer of the route (and of `drover hook launch -o json`). */
export interface LaunchHookView {
  instanceId: string;
  result: 'continue' | 'abandon';
  /** The hook's state now: `continued` (in service once healthy) or `abandoned` (being replaced). */
  launchHook: 'continued' | 'abandoned';
}

function parseBody(body: unknown): z.output<typeof launchHookBody> {
  const parsed = launchHookBody.safeParse(body);
  if (parsed.success) return parsed.data;
  const message = parsed.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
  throw new InvalidRequestError(`invalid body: ${message} (expected {"result": "continue"} or {"result": "abandon"})`);
}

export function registerHookRoutes(app: FastifyInstance, deps: HookRouteDeps): void {
  const { reconciler, db } = deps;
  /** The instance named in the path, if the caller's tenants include it (else 404, as for one that does not exist). */
  const visibleId = (req: FastifyRequest): string => {
    const id = (req.params as { id: string }).id;
    const record = id.length <= MAX_ID_LENGTH ? db.getInstance(id) : null;
    if (!record || record.status === 'deleted' || !seesTenant(req.principal ?? ANONYMOUS_ADMIN, record.tenant)) throw new NotFoundError(`instance ${id} not found`);
    return record.id;
  };

  app.post('/v1/instances/:id/hooks/launch', { config: { access: 'operator' as const } }, async (req): Promise<LaunchHookView> => {
    const body = parseBody(req.body ?? undefined);
    const id = visibleId(req);
    const done = await reconciler.operator.completeLaunchHook(id, body.result, actorOf(req));
    return { instanceId: done.instanceId, result: done.result, launchHook: done.launchHook === 'continued' ? 'continued' : 'abandoned' };
  });
}
