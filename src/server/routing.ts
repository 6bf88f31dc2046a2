/**
 * Leader routing for the admin API. Every replica serves reads (GET, HEAD) from its own view; a
 * mutating call (PUT, POST, PATCH, DELETE under /v1) that reaches a replica which does not lead
 * its shard is answered with 307 Temporary Redirect to the same path on the leader's advertised
 * address (method and body are kept by the client), or 503 with `Retry-After` while no leader is
 * known (an election in progress). The response carries `X-Drover-Leader` when a leader is known.
 */
import type { FastifyInstance } from 'fastify';
import type { LeaderElector } from '../leader/index.js';

const MUTATING = new Set(['PUT', 'POST', 'PATCH', 'DELETE']);

export const LEADER_HEADER = 'x-drover-leader';

/** Registers the routing hook (after authentication, so an unauthenticated caller learns nothing). */
export function registerLeaderRouting(app: FastifyInstance, elector: LeaderElector): void {
  app.addHook('onRequest', async (req, reply) => {
    // The matched route decides (the target was made canonical before routing).
    if (!MUTATING.has(req.method) || req.is404 || !req.routeOptions.url?.startsWith('/v1/')) return;
    if (elector.isLeader()) return;
    const leader = elector.leaderAddress();
    let target: URL | null = null;
    if (leader) {
      try {
        target = new URL(`${leader.replace(/\/+$/, '')}${req.url}`);
      } catch {
        target = null;
      }
    }
    // A leader address that is this very server (its own lapsed term) is no one to send to.
    if (target && target.host !== req.headers.host) {
      return reply.code(307).header('location', target.toString()).header(LEADER_HEADER, leader).send({ error: `this replica does not lead; the leader is ${leader}`, leader });
    }
    return reply
      .code(503)
      .header('retry-after', '1')
      .send({ error: 'no leader is known for this shard right now (an election is in progress, or etcd is unreachable); retry shortly', leader: null });
  });
}
