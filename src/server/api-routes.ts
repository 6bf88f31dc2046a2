/**
 * The admin API's groups, instances and audit. Reads need the viewer role, changes the operator
 * role; a token limited to some tenants sees only those (others' groups, instances and audit are
 * absent, and naming one is a 404 exactly as for one that does not exist).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Clock } from '../clock/index.js';
import { groupSettings, type ConfigLoader } from '../config/index.js';
import { ConflictError, InvalidRequestError, NotFoundError } from '../errors/index.js';
import type { LeaderElector } from '../leader/index.js';
import { EventType, type Reconciler } from '../reconciler/index.js';
import { keys, type SizeOverride } from '../state/index.js';
import { instanceCursor, type InstanceRecord, type LocalDb } from '../store/index.js';
import type { AgentHub } from './agent-hub.js';
import { ANONYMOUS_ADMIN, actorOf, seesTenant, type Principal } from './auth.js';
import { auditView, groupView, instanceView, planView } from './views.js';

export interface ApiRouteDeps {
  clock: Clock;
  db: LocalDb;
  reconciler: Reconciler;
  configLoader: ConfigLoader;
  hub: AgentHub;
  elector: LeaderElector;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
/** Most rows one page gives (`limit`); the default page of instances is that size too. */
export const MAX_PAGE = 10_000;

export const sizeBody = z.strictObject({
  size: z.number({ error: 'size must be a number' }).int({ error: 'size must be a whole number' }).min(0, { error: 'size must be >= 0' }).max(100_000, { error: 'size must be <= 100000' }),
});

export function zodMessage(error: z.ZodError): string {
  return error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
}

const principalOf = (req: FastifyRequest): Principal => req.principal ?? ANONYMOUS_ADMIN;

/** The tenants a caller is limited to, as a store filter (undefined: every tenant). */
export function tenantFilter(principal: Principal): readonly string[] | undefined {
  return principal.tenants ? [...principal.tenants] : undefined;
}

/** An instance the caller may see, or a 404 (the same answer as for one that does not exist). */
export function visibleInstance(db: LocalDb, req: FastifyRequest, id: string): InstanceRecord {
  const record = db.getInstance(id);
  if (!record || !seesTenant(principalOf(req), record.tenant)) throw new NotFoundError(`instance ${id} not found`);
  return record;
}

function pageLimit(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const limit = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new InvalidRequestError(`limit must be a whole number from 1 to ${MAX_PAGE}`);
  return limit;
}

function sequence(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,15}$/.test(text)) throw new InvalidRequestError(`${name} must be an audit sequence number`);
  return Number(text);
}

/** Adds an RFC 8288 `Link` header to the next (or previous) page: the same query with one parameter changed. */
function linkTo(reply: FastifyReply, req: FastifyRequest, rel: 'next' | 'prev', set: Record<string, string>, drop: string[] = []): void {
  const url = new URL(req.url, 'http://drover.invalid');
  for (const name of drop) url.searchParams.delete(name);
  for (const [name, value] of Object.entries(set)) url.searchParams.set(name, value);
  void reply.header('link', `<${url.pathname}${url.search}>; rel="${rel}"`);
}

export function registerApiRoutes(app: FastifyInstance, deps: ApiRouteDeps): void {
  const { db, reconciler, configLoader, hub, clock } = deps;
  const viewer = { config: { access: 'viewer' as const } };
  const operator = { config: { access: 'operator' as const } };

  const groupInfo = (tenant: string, group: string): ReturnType<typeof groupView> => {
    const plan = reconciler.plan(tenant, group);
    const settings = groupSettings(configLoader.getCurrent(), tenant, group);
    const stored = reconciler.operatorState.get<SizeOverride>(keys.size(tenant, group));
    const override = settings && stored && stored.base === settings.size ? stored.size : null;
    return groupView(plan, {
      configuredSize: settings?.size ?? null,
      sizeOverride: override,
      template: settings?.templateName ?? null,
      templateHash: settings?.templateHash ?? null,
    });
  };

  /** A group the caller may see that is configured (or, for reads, still has instances). */
  const requireGroup = (req: FastifyRequest, mustBeConfigured: boolean): { tenant: string; group: string } => {
    const { tenant, group } = req.params as { tenant: string; group: string };
    if (!NAME.test(tenant) || !NAME.test(group)) throw new InvalidRequestError(`not a group: ${tenant}/${group}`);
    const configured = groupSettings(configLoader.getCurrent(), tenant, group) !== null;
    const exists = configured || (!mustBeConfigured && db.liveInstances(tenant, group).length > 0);
    if (!exists || !seesTenant(principalOf(req), tenant)) throw new NotFoundError(`group ${tenant}/${group} is not configured`);
    return { tenant, group };
  };

  app.get('/v1/groups', viewer, async (req) => {
    const principal = principalOf(req);
    return reconciler
      .planAll()
      .filter((p) => seesTenant(principal, p.tenant))
      .map((p) => groupInfo(p.tenant, p.group));
  });

  app.get('/v1/groups/:tenant/:group', viewer, async (req) => {
    const { tenant, group } = requireGroup(req, false);
    return groupInfo(tenant, group);
  });

  app.get('/v1/groups/:tenant/:group/plan', viewer, async (req) => {
    const { tenant, group } = requireGroup(req, false);
    // ?size=N: the dry run for a size the group does not have yet (a preview before scaling).
    const sizeText = (req.query as Record<string, string | undefined>).size;
    if (sizeText === undefined) return planView(reconciler.plan(tenant, group));
    const parsed = sizeBody.safeParse({ size: /^-?\d+$/.test(sizeText) ? Number(sizeText) : sizeText });
    if (!parsed.success) throw new InvalidRequestError(`invalid size: ${zodMessage(parsed.error)}`);
    return planView(reconciler.plan(tenant, group, { size: parsed.data.size }));
  });

  app.put('/v1/groups/:tenant/:group/size', operator, async (req) => {
    const { tenant, group } = requireGroup(req, true);
    const parsed = sizeBody.safeParse(req.body);
    if (!parsed.success) throw new InvalidRequestError(`invalid body: ${zodMessage(parsed.error)} (expected {"size": n})`);
    const settings = groupSettings(configLoader.getCurrent(), tenant, group);
    if (!settings) throw new NotFoundError(`group ${tenant}/${group} is not configured`);
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
  app.get('/v1/instances', viewer, async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    const includeDeleted = q.includeDeleted === 'true' || q.includeDeleted === '1';
    const limit = pageLimit(q.limit, MAX_PAGE);
    const tenants = tenantFilter(principalOf(req));
    const page = db.listInstances({
      ...(q.tenant ? { tenant: q.tenant } : {}),
      ...(q.group ? { group: q.group } : {}),
      ...(tenants ? { tenants } : {}),
      ...(q.after ? { after: q.after } : {}),
      includeDeleted,
      limit,
    });
    const last = page[page.length - 1];
    if (page.length === limit && last) linkTo(reply, req, 'next', { after: instanceCursor(last), limit: String(limit) });
    return page.map((r) => instanceView(r, hub.isConnected(r.id), reconciler.operator.protectedUntil(r.id)));
  });

  app.get('/v1/instances/:id', viewer, async (req) => {
    const record = visibleInstance(db, req, (req.params as { id: string }).id);
    return instanceView(record, hub.isConnected(record.id), reconciler.operator.protectedUntil(record.id));
  });

  app.post('/v1/instances/:id/drain-ack', operator, async (req, reply) => {
    const record = visibleInstance(db, req, (req.params as { id: string }).id);
    if (record.status !== 'draining') throw new ConflictError(`instance ${record.id} is not draining (status ${record.status})`);
    reconciler.enqueue({ type: EventType.DrainAcked, tenant: record.tenant, groupKey: record.group, instanceId: record.id, cause: actorOf(req) });
    return reply.code(202).send({ instanceId: record.id, acknowledged: true });
  });

  // ---- audit ----------------------------------------------------------------------------------
  app.get('/v1/audit', viewer, async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    let tenant = q.tenant;
    let group = q.group;
    if (group?.includes('/')) [tenant, group] = group.split('/', 2) as [string, string];
    const limit = pageLimit(q.limit, 500);
    const after = sequence('after', q.after);
    const before = sequence('before', q.before);
    if (after !== undefined && before !== undefined) throw new InvalidRequestError('give at most one of after and before');
    const tenants = tenantFilter(principalOf(req));
    const entries = db.listAudit({
      ...(q.instance ? { instanceId: q.instance } : {}),
      ...(tenant ? { tenant } : {}),
      ...(group ? { group } : {}),
      ...(tenants ? { tenants } : {}),
      ...(after !== undefined ? { afterSeq: after } : {}),
      ...(before !== undefined ? { beforeSeq: before } : {}),
      limit,
    });
    const first = entries[0];
    const last = entries[entries.length - 1];
    if (entries.length === limit && first && last) {
      // Paging forward (after=) goes on after the last entry; otherwise back, before the first.
      if (after !== undefined) linkTo(reply, req, 'next', { after: String(last.seq) });
      else linkTo(reply, req, 'prev', { before: String(first.seq) }, ['after']);
    }
    return entries.map(auditView);
  });
}
