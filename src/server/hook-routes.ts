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
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { LAUNCH_HOOK_RESULTS } from '../config/index.js';
import { NotFoundError } from '../errors/index.js';
import type { Reconciler } from '../reconciler/index.js';
import type { LocalDb } from '../store/index.js';
import { ANONYMOUS_ADMIN, actorOf, seesTenant } from './auth.js';
import { defineRoute } from './route-spec.js';

export interface HookRouteDeps {
  reconciler: Reconciler;
  db: LocalDb;
}

/** The longest instance id the route looks up (ids are far shorter; longer is not one). */
const MAX_ID_LENGTH = 200;

export const launchHookBody = z.strictObject(
  { result: z.enum(LAUNCH_HOOK_RESULTS, { error: 'result must be "continue" or "abandon"' }) },
  // (Only for a body that is no object: an unknown field keeps zod's message, which names it.)
  { error: (issue) => (issue.code === 'invalid_type' ? 'the body must be a JSON object such as {"result": "continue"}' : undefined) },
);

/** The answer of the route (and of `drover hook launch -o json`). */
export const launchHookViewSchema = z
  .strictObject({
    instanceId: z.string(),
    result: z.enum(LAUNCH_HOOK_RESULTS),
    launchHook: z.enum(['continued', 'abandoned']).meta({ description: "The hook's state now: `continued` (in service once healthy) or `abandoned` (being replaced)." }),
  })
  .meta({ id: 'LaunchHookResult', description: 'What `POST /v1/instances/{id}/hooks/launch` answers.' });
export type LaunchHookView = z.infer<typeof launchHookViewSchema>;

const idParams = z.object({ id: z.string().meta({ description: "The instance's Drover id." }) });

export function registerHookRoutes(app: FastifyInstance, deps: HookRouteDeps): void {
  const { reconciler, db } = deps;

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/v1/instances/:id/hooks/launch',
      access: 'operator',
      tag: 'instances',
      summary: "Complete an instance's launch hook",
      description: 'With `continue` the instance counts in service once healthy; with `abandon` it is deleted and replaced. The instance itself can do the same with `drover self ready`; a hook nobody completes times out as its group\'s `hooks.launch.onTimeout` says.',
      params: idParams,
      body: launchHookBody,
      invalid: (_part, issues) => `invalid body: ${issues} (expected {"result": "continue"} or {"result": "abandon"})`,
      responses: { 200: { description: 'The hook is completed.', schema: launchHookViewSchema } },
      errors: { 404: 'No such instance, or one of a tenant the token may not see.', 409: 'No launch hook is pending on it (none configured when it was created, completed already, or not running).' },
    },
    async ({ req, params, body }) => {
      const record = params.id.length <= MAX_ID_LENGTH ? db.getInstance(params.id) : null;
      // Another tenant's instance is a 404, as one that does not exist.
      if (!record || record.status === 'deleted' || !seesTenant(req.principal ?? ANONYMOUS_ADMIN, record.tenant)) throw new NotFoundError(`instance ${params.id} not found`);
      const done = await reconciler.operator.completeLaunchHook(record.id, body.result, actorOf(req));
      return { instanceId: done.instanceId, result: done.result, launchHook: done.launchHook === 'continued' ? ('continued' as const) : ('abandoned' as const) };
    },
  );
}
