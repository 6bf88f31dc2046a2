/**
 * The admin API's groups, instances and audit. Reads need the viewer role, changes the operator
 * role; a token limited to some tenants sees only those (others' groups, instances and audit are
 * absent, and naming one is a 404 exactly as for one that does not exist).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Clock } from '../clock/index.js';
import { configuredGroups, groupSettings, groupSizing, type ConfigLoader } from '../config/index.js';
import { ConflictError, InvalidRequestError, NotFoundError } from '../errors/index.js';
import type { LeaderElector } from '../leader/index.js';
import { EventType, type Reconciler } from '../reconciler/index.js';
import { keys, type SizeOverride } from '../state/index.js';
import { instanceCursor, type InstanceRecord, type LocalDb } from '../store/index.js';
import type { AgentHub } from './agent-hub.js';
import { ANONYMOUS_ADMIN, actorOf, seesTenant, type Principal } from './auth.js';
import { auditView, groupView, instanceView, planView, sizingView, tenantView } from './views.js';

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

/** The furthest ahead a sleep's `until` may be. */
export const MAX_SLEEP_MS = 365 * 86_400_000;

export const sleepBody = z
  .strictObject({
    until: z.iso
      .datetime({ offset: true, error: 'until must be an ISO-8601 time such as "2026-11-29T18:00:00Z"' })
      .refine((text) => Number.isFinite(Date.parse(text)), { error: 'until must be a time that exists' })
      .optional(),
  })
  .optional();

/** A wake takes no options: no body, or `{}`. */
export const wakeBody = z.strictObject({}).optional();

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
    // An operator's size that a later schedule (or autoscale) replaced is no longer in force.
    const override = settings && stored && stored.base === settings.size && plan.sizing?.source === 'operator' ? stored.size : null;
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
    const config = configLoader.getCurrent();
    const settings = groupSettings(config, tenant, group);
    const sizing = groupSizing(config, tenant, group);
    if (!settings || !sizing) throw new NotFoundError(`group ${tenant}/${group} is not configured`);
    const size = parsed.data.size;
    if (size < sizing.min || size > sizing.max) {
      throw new InvalidRequestError(`setting the size of ${tenant}/${group}: ${size} is outside the group's bounds: min ${sizing.min}, max ${sizing.max}`);
    }
    // While the tenant sleeps, the operator sets the size it wakes to: the size before is that one.
    const was = reconciler.sizeDecision(tenant, group);
    const before = was?.awakeSize ?? settings.size;
    const actor = actorOf(req);
    const now = clock.now();
    const override: SizeOverride = { size, base: settings.size, at: now.toISOString(), by: actor };
    await reconciler.operatorState.set(keys.size(tenant, group), override);
    const decision = reconciler.sizeDecision(tenant, group);
    // It stands until the next schedule fires (or the config's size changes): say so.
    const standsUntil = sizing.schedules.length > 0 ? (decision?.nextSchedule?.at.toISOString() ?? null) : null;
    const until = standsUntil && decision?.nextSchedule ? `; it stands until schedule "${decision.nextSchedule.name}" sets ${decision.nextSchedule.size} at ${standsUntil}` : '';
    const asleep = decision?.sleeping ? `; tenant ${tenant} is asleep: the size applies when it wakes` : '';
    db.appendAudit({ tenant, group, at: now, instanceId: null, action: 'scale', reason: 'operator', actor, detail: `size ${before} -> ${size}${until}${asleep}`, epoch: deps.elector.epoch() });
    reconciler.enqueue({ type: EventType.GroupChanged, tenant, groupKey: group, cause: 'operator' });
    return { tenant, group, size, previousSize: before, standsUntil, sizing: decision ? sizingView(decision) : null };
  });

  // ---- tenants: sleep and wake ----------------------------------------------------------------
  const tenantGroups = (tenant: string): string[] =>
    configuredGroups(configLoader.getCurrent())
      .filter((g) => g.tenant === tenant)
      .map((g) => g.group);

  /** A tenant the caller may see that has configured groups (else 404, as for one that does not exist). */
  const requireTenant = (req: FastifyRequest, doing: string): string => {
    const { tenant } = req.params as { tenant: string };
    if (!NAME.test(tenant)) throw new InvalidRequestError(`${doing}: not a tenant name: ${JSON.stringify(tenant)}`);
    if (tenantGroups(tenant).length === 0 || !seesTenant(principalOf(req), tenant)) throw new NotFoundError(`${doing}: tenant ${tenant} has no configured groups`);
    return tenant;
  };

  app.get('/v1/tenants', viewer, async (req) => {
    const principal = principalOf(req);
    const tenants = [...new Set(configuredGroups(configLoader.getCurrent()).map((g) => g.tenant))].filter((t) => seesTenant(principal, t)).sort();
    return tenants.map((t) => tenantView(t, tenantGroups(t), reconciler.tenantSleep(t)));
  });

  app.post('/v1/tenants/:tenant/sleep', operator, async (req) => {
    const tenant = requireTenant(req, 'putting a tenant to sleep');
    const doing = `putting tenant ${tenant} to sleep`;
    const parsed = sleepBody.safeParse(req.body ?? undefined);
    if (!parsed.success) throw new InvalidRequestError(`${doing}: invalid body: ${zodMessage(parsed.error)} (expected {} or {"until": "<ISO time>"})`);
    const now = clock.nowMs();
    const text = parsed.data?.until;
    const until = text === undefined ? null : new Date(Date.parse(text));
    if (until && until.getTime() <= now) throw new InvalidRequestError(`${doing}: until ${text} is not in the future (now ${new Date(now).toISOString()})`);
    if (until && until.getTime() > now + MAX_SLEEP_MS) throw new InvalidRequestError(`${doing}: until ${text} is more than a year away`);
    const change = await reconciler.sleepTenant(tenant, until, actorOf(req));
    return tenantView(tenant, change.groups, change.sleep);
  });

  app.post('/v1/tenants/:tenant/wake', operator, async (req) => {
    const tenant = requireTenant(req, 'waking a tenant');
    const parsed = wakeBody.safeParse(req.body ?? undefined);
    if (!parsed.success) throw new InvalidRequestError(`waking tenant ${tenant}: invalid body: ${zodMessage(parsed.error)} (expected none or {})`);
    const change = await reconciler.wakeTenant(tenant, actorOf(req));
    return { ...tenantView(tenant, change.groups, null), woken: change.changed };
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
