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
import { defineRoute, zodMessage } from './route-spec.js';
import { auditView, auditViewSchema, fleetViewSchema, groupView, groupViewSchema, instanceView, instanceViewSchema, isoTime, planView, planViewSchema, sizingView, sizingViewSchema, tenantView, tenantViewSchema } from './views.js';

export { zodMessage };

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

/** A tenant's or group's name as the config allows it. */
export const nameParam = (what: string): z.ZodString => z.string().regex(NAME, { error: `${what} must be a name: a letter or digit, then up to 62 of letters, digits, "_", "." and "-"` });
export const groupParams = z.object({ tenant: nameParam('tenant'), group: nameParam('group') });
export const tenantParams = z.object({ tenant: nameParam('tenant') });
export const instanceParams = z.object({ id: z.string().min(1).max(200).meta({ description: "The instance's Drover id." }) });

const limitParam = (max: number, fallback: number): z.ZodOptional<z.ZodString> =>
  z
    .string()
    .meta({ description: `Rows in one page: a whole number from 1 to ${max} (default ${fallback}).`, pattern: '^\\d+$' })
    .optional();

const instancesQuery = z.object({
  tenant: z.string().max(200).optional(),
  group: z.string().max(200).optional(),
  includeDeleted: z.string().max(10).meta({ description: '"true" or "1": deleted instances too.' }).optional(),
  limit: limitParam(MAX_PAGE, MAX_PAGE),
  after: z.string().max(1_000).meta({ description: 'The cursor from the previous page\'s `Link: rel="next"`.' }).optional(),
});

const auditQuery = z.object({
  instance: z.string().max(200).optional(),
  tenant: z.string().max(200).optional(),
  group: z.string().max(200).meta({ description: 'A group, or "tenant/group".' }).optional(),
  limit: limitParam(MAX_PAGE, 500),
  after: z.string().max(20).meta({ description: 'Entries after this sequence number (oldest first).', pattern: '^\\d{1,15}$' }).optional(),
  before: z.string().max(20).meta({ description: 'Entries before this sequence number.', pattern: '^\\d{1,15}$' }).optional(),
});

/** Most groups one page of `GET /v1/groups` gives, and its default: each row is its group's plan. */
export const MAX_GROUP_PAGE = 1_000;

const groupsQuery = z.object({
  tenant: z.string().max(200).meta({ description: 'Only this tenant\'s groups.' }).optional(),
  q: z.string().max(200).meta({ description: 'Only groups whose "tenant/group" contains this text.' }).optional(),
  limit: limitParam(MAX_GROUP_PAGE, MAX_GROUP_PAGE),
  after: z.string().max(200).meta({ description: 'The cursor ("tenant/group") from the previous page\'s `Link: rel="next"`.' }).optional(),
});

const planQuery = z.object({ size: z.string().max(20).meta({ description: 'The dry run for this size instead of the current one (0..100000).', pattern: '^-?\\d+$' }).optional() });

const sizeResultSchema = z
  .strictObject({
    tenant: z.string(),
    group: z.string(),
    size: z.number().int(),
    previousSize: z.number().int(),
    standsUntil: isoTime.nullable().meta({ description: 'When the next schedule replaces this size, if the group has schedules.' }),
    sizing: sizingViewSchema.nullable(),
  })
  .meta({ id: 'SizeResult' });

const wakeResultSchema = tenantViewSchema.extend({ woken: z.boolean().meta({ description: 'The tenant was asleep.' }) }).meta({ id: 'WakeResult' });

const LINK_NEXT = { Link: 'RFC 8288: `<...>; rel="next"` to the next page, when this one is full.' };

function pageLimit(text: string | undefined, fallback: number, max = MAX_PAGE): number {
  if (text === undefined) return fallback;
  const limit = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(limit) || limit < 1 || limit > max) throw new InvalidRequestError(`limit must be a whole number from 1 to ${max}`);
  return limit;
}

type GroupKey = { tenant: string; group: string };
/** (tenant, group) order, as SQLite's (binary) order of the same names: names are ASCII (NAME). */
const compareGroups = (a: GroupKey, b: GroupKey): number => (a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : a.group < b.group ? -1 : a.group > b.group ? 1 : 0);

/** A `GET /v1/groups` cursor: the last group of the page before, "tenant/group". */
function parseGroupCursor(text: string): GroupKey {
  const [tenant, group, ...rest] = text.split('/');
  if (!tenant || !group || rest.length > 0) throw new InvalidRequestError('after: not a group cursor ("tenant/group")');
  return { tenant, group };
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
  const requireGroup = (req: FastifyRequest, params: { tenant: string; group: string }, mustBeConfigured: boolean): { tenant: string; group: string } => {
    const { tenant, group } = params;
    const configured = groupSettings(configLoader.getCurrent(), tenant, group) !== null;
    const exists = configured || (!mustBeConfigured && db.liveInstances(tenant, group).length > 0);
    if (!exists || !seesTenant(principalOf(req), tenant)) throw new NotFoundError(`group ${tenant}/${group} is not configured`);
    return { tenant, group };
  };
  /** A path naming no group the config could hold says so (not a 404: no such group can exist). */
  const notAGroup = (part: string, issues: string, req: FastifyRequest): string => {
    const { tenant, group } = req.params as { tenant: string; group: string };
    return part === 'path' ? `not a group: ${tenant}/${group}` : `invalid ${part}: ${issues}`;
  };

  /**
   * One page of the groups a caller may see (configured, or with live instances), in (tenant,
   * group) order after `after`. The config's groups are in memory; those with instances come from
   * the live-by-group index, read only as far as the page needs. No instance row is read here.
   */
  const groupsPage = (principal: Principal, options: { tenant?: string; contains?: string; after?: GroupKey; limit: number }): GroupKey[] => {
    const wanted = (g: GroupKey): boolean =>
      seesTenant(principal, g.tenant) &&
      (options.tenant === undefined || g.tenant === options.tenant) &&
      (options.contains === undefined || `${g.tenant}/${g.group}`.includes(options.contains)) &&
      (options.after === undefined || compareGroups(g, options.after) > 0);
    if (options.tenant !== undefined && !seesTenant(principal, options.tenant)) return [];
    const configured = configuredGroups(configLoader.getCurrent()).filter(wanted).sort(compareGroups);
    const scope = options.tenant !== undefined ? [options.tenant] : tenantFilter(principal);
    const stored: GroupKey[] = [];
    // The index gives groups in order; a text filter is applied here, so read on until the page is full.
    let after = options.after;
    for (;;) {
      const chunk = db.liveGroupsPage({ ...(after ? { after } : {}), ...(scope ? { tenants: scope } : {}), limit: options.limit });
      stored.push(...chunk.filter(wanted));
      const last = chunk[chunk.length - 1];
      if (chunk.length < options.limit || !last || stored.length >= options.limit) break;
      after = last;
    }
    const out: GroupKey[] = [];
    let i = 0;
    let j = 0;
    while (out.length < options.limit && (i < configured.length || j < stored.length)) {
      const a = configured[i];
      const b = stored[j];
      const order = a && b ? compareGroups(a, b) : a ? -1 : 1;
      out.push((order <= 0 ? a : b)!);
      if (order <= 0) i++;
      if (order >= 0) j++;
    }
    return out;
  };

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/groups',
      access: 'viewer',
      tag: 'groups',
      summary: 'The groups the caller may see, a page at a time',
      description: `In (tenant, group) order, at most ${MAX_GROUP_PAGE} a page (the default); a full page has a \`Link: rel="next"\`. Each row is the group's plan now, so a page costs one plan per group on it; the fleet's totals are \`GET /v1/fleet\`.`,
      query: groupsQuery,
      responses: { 200: { description: 'A page of groups.', schema: z.array(groupViewSchema), headers: LINK_NEXT } },
      errors: { 400: `The limit is not a whole number from 1 to ${MAX_GROUP_PAGE}, or the cursor is not "tenant/group".` },
    },
    async ({ req, reply, query: q }) => {
      const limit = pageLimit(q.limit, MAX_GROUP_PAGE, MAX_GROUP_PAGE);
      const page = groupsPage(principalOf(req), {
        ...(q.tenant !== undefined ? { tenant: q.tenant } : {}),
        ...(q.q ? { contains: q.q } : {}),
        ...(q.after !== undefined ? { after: parseGroupCursor(q.after) } : {}),
        limit,
      });
      const last = page[page.length - 1];
      if (page.length === limit && last) linkTo(reply, req, 'next', { after: `${last.tenant}/${last.group}`, limit: String(limit) });
      return page.map((g) => groupInfo(g.tenant, g.group));
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/fleet',
      access: 'viewer',
      tag: 'groups',
      summary: "The fleet's totals",
      description: 'Groups and live instances by status over every tenant the caller may see, counted in SQL from the live-by-group index (no instance row is read, no group planned): the dashboard\'s header at any fleet size.',
      responses: { 200: { description: 'The totals.', schema: fleetViewSchema } },
    },
    async ({ req }) => {
      const principal = principalOf(req);
      const tenants = tenantFilter(principal);
      const byStatus = { creating: 0, running: 0, draining: 0, deleting: 0 };
      const groups = new Set<string>();
      const tenantNames = new Set<string>();
      for (const g of configuredGroups(configLoader.getCurrent())) {
        if (!seesTenant(principal, g.tenant)) continue;
        groups.add(`${g.tenant}/${g.group}`);
        tenantNames.add(g.tenant);
      }
      const configured = groups.size;
      let instances = 0;
      for (const row of db.liveCountsByGroup(tenants)) {
        if (!seesTenant(principal, row.tenant)) continue;
        groups.add(`${row.tenant}/${row.group}`);
        tenantNames.add(row.tenant);
        instances += row.count;
        if (row.status in byStatus) byStatus[row.status as keyof typeof byStatus] += row.count;
      }
      return { tenants: tenantNames.size, groups: groups.size, configuredGroups: configured, instances, byStatus };
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/groups/:tenant/:group',
      access: 'viewer',
      tag: 'groups',
      summary: 'One group',
      params: groupParams,
      invalid: notAGroup,
      responses: { 200: { description: 'The group.', schema: groupViewSchema } },
      errors: { 404: 'No such group (configured, or with instances left), or one of a tenant the token may not see.' },
    },
    async ({ req, params }) => {
      const { tenant, group } = requireGroup(req, params, false);
      return groupInfo(tenant, group);
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/groups/:tenant/:group/plan',
      access: 'viewer',
      tag: 'groups',
      summary: "A group's dry-run plan",
      description: 'What the reconciler would do now (nothing is done); with `size`, what it would do at that size (a preview before scaling).',
      params: groupParams,
      query: planQuery,
      invalid: notAGroup,
      responses: { 200: { description: 'The plan.', schema: planViewSchema } },
      errors: { 400: 'The size is not a whole number from 0 to 100000.', 404: 'No such group.' },
    },
    async ({ req, params, query }) => {
      const { tenant, group } = requireGroup(req, params, false);
      // ?size=N: the dry run for a size the group does not have yet (a preview before scaling).
      const sizeText = query.size;
      if (sizeText === undefined) return planView(reconciler.plan(tenant, group));
      const parsed = sizeBody.safeParse({ size: /^-?\d+$/.test(sizeText) ? Number(sizeText) : sizeText });
      if (!parsed.success) throw new InvalidRequestError(`invalid size: ${zodMessage(parsed.error)}`);
      return planView(reconciler.plan(tenant, group, { size: parsed.data.size }));
    },
  );

  defineRoute(
    app,
    {
      method: 'PUT',
      url: '/v1/groups/:tenant/:group/size',
      access: 'operator',
      tag: 'groups',
      summary: "Set a group's size",
      description: 'Stands until the next schedule fires or the config changes the size; while the tenant sleeps, it is the size the group wakes to. Audited.',
      params: groupParams,
      body: sizeBody,
      invalid: (part, issues, req) => (part === 'body' ? `invalid body: ${issues} (expected {"size": n})` : notAGroup(part, issues, req)),
      responses: { 200: { description: 'The size set, the size before, and what sets the size now.', schema: sizeResultSchema } },
      errors: { 400: "The size is outside the group's min..max.", 404: 'No such configured group.' },
    },
    async ({ req, params, body }) => {
      const { tenant, group } = requireGroup(req, params, true);
      const config = configLoader.getCurrent();
      const settings = groupSettings(config, tenant, group);
      const sizing = groupSizing(config, tenant, group);
      if (!settings || !sizing) throw new NotFoundError(`group ${tenant}/${group} is not configured`);
      const size = body.size;
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
    },
  );

  // ---- tenants: sleep and wake ----------------------------------------------------------------
  const tenantGroups = (tenant: string): string[] =>
    configuredGroups(configLoader.getCurrent())
      .filter((g) => g.tenant === tenant)
      .map((g) => g.group);

  /** A tenant the caller may see that has configured groups (else 404, as for one that does not exist). */
  const requireTenant = (req: FastifyRequest, tenant: string, doing: string): string => {
    if (tenantGroups(tenant).length === 0 || !seesTenant(principalOf(req), tenant)) throw new NotFoundError(`${doing}: tenant ${tenant} has no configured groups`);
    return tenant;
  };
  const tenantOf = (req: FastifyRequest): string => JSON.stringify((req.params as { tenant?: string }).tenant ?? '');

  defineRoute(
    app,
    { method: 'GET', url: '/v1/tenants', access: 'viewer', tag: 'tenants', summary: 'Every tenant the caller may see, with its groups and sleep', responses: { 200: { description: 'The tenants.', schema: z.array(tenantViewSchema) } } },
    async ({ req }) => {
      const principal = principalOf(req);
      const tenants = [...new Set(configuredGroups(configLoader.getCurrent()).map((g) => g.tenant))].filter((t) => seesTenant(principal, t)).sort();
      return tenants.map((t) => tenantView(t, tenantGroups(t), reconciler.tenantSleep(t)));
    },
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/v1/tenants/:tenant/sleep',
      access: 'operator',
      tag: 'tenants',
      summary: "Put a tenant to sleep (its groups' size 0)",
      description: 'Until woken, or until `until`. Audited.',
      params: tenantParams,
      body: sleepBody,
      invalid: (part, issues, req) =>
        part === 'path' ? `putting a tenant to sleep: not a tenant name: ${tenantOf(req)}` : `putting tenant ${(req.params as { tenant: string }).tenant} to sleep: invalid ${part}: ${issues} (expected {} or {"until": "<ISO time>"})`,
      responses: { 200: { description: 'The tenant, asleep.', schema: tenantViewSchema } },
      errors: { 400: '`until` is not in the future, or more than a year away.', 404: 'No tenant with configured groups by that name.' },
    },
    async ({ req, params, body }) => {
      const tenant = requireTenant(req, params.tenant, 'putting a tenant to sleep');
      const doing = `putting tenant ${tenant} to sleep`;
      const now = clock.nowMs();
      const text = body?.until;
      const until = text === undefined ? null : new Date(Date.parse(text));
      if (until && until.getTime() <= now) throw new InvalidRequestError(`${doing}: until ${text} is not in the future (now ${new Date(now).toISOString()})`);
      if (until && until.getTime() > now + MAX_SLEEP_MS) throw new InvalidRequestError(`${doing}: until ${text} is more than a year away`);
      const change = await reconciler.sleepTenant(tenant, until, actorOf(req));
      return tenantView(tenant, change.groups, change.sleep);
    },
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/v1/tenants/:tenant/wake',
      access: 'operator',
      tag: 'tenants',
      summary: 'Wake a tenant',
      params: tenantParams,
      body: wakeBody,
      invalid: (part, issues, req) =>
        part === 'path' ? `waking a tenant: not a tenant name: ${tenantOf(req)}` : `waking tenant ${(req.params as { tenant: string }).tenant}: invalid ${part}: ${issues} (expected none or {})`,
      responses: { 200: { description: 'The tenant, awake; `woken` says whether it slept.', schema: wakeResultSchema } },
      errors: { 404: 'No tenant with configured groups by that name.' },
    },
    async ({ req, params }) => {
      const tenant = requireTenant(req, params.tenant, 'waking a tenant');
      const change = await reconciler.wakeTenant(tenant, actorOf(req));
      return { ...tenantView(tenant, change.groups, null), woken: change.changed };
    },
  );

  // ---- instances ------------------------------------------------------------------------------
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/instances',
      access: 'viewer',
      tag: 'instances',
      summary: 'Instances, a page at a time',
      query: instancesQuery,
      responses: { 200: { description: 'A page of instances.', schema: z.array(instanceViewSchema), headers: LINK_NEXT } },
      errors: { 400: 'The limit is not a whole number from 1 to 10000.' },
    },
    async ({ req, reply, query: q }) => {
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
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/instances/:id',
      access: 'viewer',
      tag: 'instances',
      summary: 'One instance',
      params: instanceParams,
      responses: { 200: { description: 'The instance.', schema: instanceViewSchema } },
      errors: { 404: 'No such instance, or one of a tenant the token may not see.' },
    },
    async ({ req, params }) => {
      const record = visibleInstance(db, req, params.id);
      return instanceView(record, hub.isConnected(record.id), reconciler.operator.protectedUntil(record.id));
    },
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/v1/instances/:id/drain-ack',
      access: 'operator',
      tag: 'instances',
      summary: "Acknowledge an instance's drain (it may be deleted now)",
      params: instanceParams,
      responses: { 202: { description: 'Acknowledged; the reconciler deletes it.', schema: z.strictObject({ instanceId: z.string(), acknowledged: z.literal(true) }).meta({ id: 'DrainAckResult' }) } },
      errors: { 404: 'No such instance.', 409: 'The instance is not draining.' },
    },
    async ({ req, reply, params }) => {
      const record = visibleInstance(db, req, params.id);
      if (record.status !== 'draining') throw new ConflictError(`instance ${record.id} is not draining (status ${record.status})`);
      reconciler.enqueue({ type: EventType.DrainAcked, tenant: record.tenant, groupKey: record.group, instanceId: record.id, cause: actorOf(req) });
      void reply.code(202);
      return { instanceId: record.id, acknowledged: true as const };
    },
  );

  // ---- audit ----------------------------------------------------------------------------------
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/audit',
      access: 'viewer',
      tag: 'audit',
      summary: 'The audit trail, a page at a time',
      description: 'Newest last. Without `after`, the latest page; `Link: rel="prev"` pages back, `rel="next"` (with `after`) forward.',
      query: auditQuery,
      responses: { 200: { description: 'A page of audit entries.', schema: z.array(auditViewSchema), headers: { Link: 'RFC 8288: the next (`after`) or previous page, when this one is full.' } } },
      errors: { 400: 'A limit, after or before that is not a number, or both after and before.' },
    },
    async ({ req, reply, query: q }) => {
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
    },
  );
}
