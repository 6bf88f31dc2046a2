/**
 * The admin API's sizing: what sets a group's size (GET /v1/groups), the bounds and the standing
 * of an operator's size (PUT size), and tenant sleep and wake (POST /v1/tenants/...): inputs,
 * roles and tenants checked, each change audited once.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock/index.js';
import type { GroupView, TenantView } from '../../src/server/views.js';
import { TestServer } from '../helpers/server-harness.js';

let t: TestServer | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const ADMIN = 'admin-token-0123456789';
const TEAM_A = 'team-a-token-0123456789';
const VIEWER = 'viewer-token-0123456789';
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
// 2026-01-05 is a Monday. The server starts before the weekday morning schedule (08:00 Berlin,
// 07:00Z): the configured size counts from its start, the schedule from when it fires.
const START = new Date('2026-01-05T06:00:00Z');
const NOW = new Date('2026-01-05T10:00:00Z');
const QUIET = { healthCheckInterval: '1h', startupTimeout: '2h', resyncInterval: '0s' };
const GROUPS = {
  a: {
    web: {
      size: 6,
      min: 2,
      max: 40,
      template: 'web',
      schedules: [
        { cron: '0 8 * * 1-5', timezone: 'Europe/Berlin', size: 12, name: 'weekday mornings' },
        { cron: '0 20 * * *', timezone: 'Europe/Berlin', size: 4 },
      ],
    },
    worker: { size: 1, template: 'worker' },
  },
  b: { web: { size: 1, template: 'web' } },
};

async function start(): Promise<{ server: TestServer; clock: ManualClock }> {
  const clock = new ManualClock(START);
  const server = new TestServer({ token: ADMIN, groups: GROUPS, shard: QUIET, clock });
  server.writeConfig({
    server: {
      tokens: [
        { name: 'team-a', sha256: sha256(TEAM_A), role: 'operator', tenants: ['a'] },
        { name: 'grafana', sha256: sha256(VIEWER), role: 'viewer' },
      ],
    },
  });
  await server.start();
  await server.settle();
  await clock.advanceTo(NOW.getTime());
  await server.settle();
  return { server, clock };
}

const as = (token: string): Record<string, string> => ({ Authorization: `Bearer ${token}` });

describe('sizing in the admin API', () => {
  it('shows what sets each group size and why, with the schedule in force and the next', async () => {
    ({ server: t } = await start());
    const groups = (await t.api<GroupView[]>('GET', '/v1/groups')).body;
    const web = groups.find((g) => g.tenant === 'a' && g.group === 'web')!;
    expect(web).toMatchObject({ size: 12, configuredSize: 6 });
    expect(web.sizing).toMatchObject({
      source: 'schedule',
      size: 12,
      requested: 12,
      since: '2026-01-05T07:00:00.000Z',
      by: null,
      min: 2,
      max: 40,
      floor: 2,
      awakeSize: 12,
      schedule: { name: 'weekday mornings', size: 12, at: '2026-01-05T07:00:00.000Z' },
      nextSchedule: { name: '0 20 * * *', size: 4, at: '2026-01-05T19:00:00.000Z' },
      sleeping: null,
    });
    expect(web.sizing?.reason).toMatch(/^schedule "weekday mornings" \(0 8 \* \* 1-5, Europe\/Berlin\) set 12 at 2026-01-05T07:00:00.000Z; next schedule/);
    expect((await t.api<GroupView>('GET', '/v1/groups/a/worker')).body.sizing).toMatchObject({ source: 'config', since: START.toISOString(), reason: `the configured size 1 (in force since ${START.toISOString()})` });
  });

  it.each([
    [1, /setting the size of a\/web: 1 is outside the group's bounds: min 2, max 40/],
    [41, /setting the size of a\/web: 41 is outside the group's bounds: min 2, max 40/],
  ])('refuses a size of %i outside min..max with a 400 naming the bounds, and changes nothing', async (size, message) => {
    ({ server: t } = await start());
    const res = await t.api<{ error: string }>('PUT', '/v1/groups/a/web/size', { size });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(message);
    expect(t.server.db.listAudit({ tenant: 'a' }).filter((a) => a.action === 'scale' && a.reason === 'operator')).toHaveLength(0);
  });

  it("says until when an operator's size stands: the next schedule", async () => {
    ({ server: t } = await start());
    const res = await t.api<{ standsUntil: string | null; sizing: { source: string; reason: string } }>('PUT', '/v1/groups/a/web/size', { size: 20 }, { 'X-Drover-Actor': 'alice' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ size: 20, previousSize: 12, standsUntil: '2026-01-05T19:00:00.000Z', sizing: { source: 'operator' } });
    expect(res.body.sizing.reason).toMatch(/it stands until the next schedule fires/);
    expect(t.server.db.listAudit({ tenant: 'a', group: 'web' }).filter((a) => a.action === 'scale' && a.reason === 'operator').map((a) => a.detail)).toEqual([
      'size 12 -> 20; it stands until schedule "0 20 * * *" sets 4 at 2026-01-05T19:00:00.000Z',
    ]);
    expect((await t.api<{ standsUntil: string | null }>('PUT', '/v1/groups/b/web/size', { size: 2 })).body.standsUntil).toBeNull();
  });

  it("no longer shows an operator's size as in force once the next schedule has fired", async () => {
    let clock: ManualClock;
    ({ server: t, clock } = await start());
    await t.api('PUT', '/v1/groups/a/web/size', { size: 20 });
    expect((await t.api<GroupView>('GET', '/v1/groups/a/web')).body).toMatchObject({ size: 20, sizeOverride: 20, sizing: { source: 'operator' } });
    await clock.advanceTo(Date.parse('2026-01-05T19:00:00Z'));
    await t.settle();
    expect((await t.api<GroupView>('GET', '/v1/groups/a/web')).body).toMatchObject({ size: 4, sizeOverride: null, sizing: { source: 'schedule', requested: 4 } });
    const scaled = t.server.db.listAudit({ tenant: 'a', group: 'web' }).filter((a) => a.action === 'scale');
    expect(scaled.map((a) => [a.actor, a.at.toISOString(), a.detail?.split(':')[0]])).toEqual([
      ['reconciler', '2026-01-05T07:00:00.000Z', 'size 6 -> 12'],
      ['operator:api', NOW.toISOString(), 'size 12 -> 20; it stands until schedule "0 20 * * *" sets 4 at 2026-01-05T19'],
      ['reconciler', '2026-01-05T19:00:00.000Z', 'size 20 -> 4'],
    ]);
  });

  it('sets the size a sleeping tenant wakes to, and says so', async () => {
    ({ server: t } = await start());
    await t.api('POST', '/v1/tenants/a/sleep', {});
    const res = await t.api<{ previousSize: number; sizing: { size: number; awakeSize: number } }>('PUT', '/v1/groups/a/web/size', { size: 7 });
    expect(res.body).toMatchObject({ previousSize: 12, sizing: { size: 0, awakeSize: 7 } });
    expect(t.server.db.listAudit({ tenant: 'a', group: 'web' }).find((a) => a.action === 'scale' && a.reason === 'operator')?.detail).toMatch(/^size 12 -> 7; .*; tenant a is asleep: the size applies when it wakes$/);
  });

  it('puts a tenant to sleep and wakes it, audited once per group with the caller, and lists tenants', async () => {
    ({ server: t } = await start());
    const res = await t.api<TenantView>('POST', '/v1/tenants/a/sleep', { until: '2026-01-05T18:00:00Z' }, { ...as(TEAM_A), 'X-Drover-Actor': 'alice' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ tenant: 'a', groups: ['web', 'worker'], asleep: true, sleep: { since: NOW.toISOString(), until: '2026-01-05T18:00:00.000Z', by: 'operator:team-a/alice' } });
    await t.settle();
    const web = (await t.api<GroupView>('GET', '/v1/groups/a/web')).body;
    expect(web).toMatchObject({ size: 0, configuredSize: 6, sizing: { size: 0, awakeSize: 12, sleeping: { until: '2026-01-05T18:00:00.000Z' } } });
    expect(web.sizing?.reason).toMatch(/^tenant a is asleep/);
    expect((await t.api<TenantView[]>('GET', '/v1/tenants', undefined, as(VIEWER))).body.map((x) => [x.tenant, x.asleep])).toEqual([
      ['a', true],
      ['b', false],
    ]);
    expect((await t.api<TenantView[]>('GET', '/v1/tenants', undefined, as(TEAM_A))).body.map((x) => x.tenant)).toEqual(['a']);

    const woken = await t.api<TenantView & { woken: boolean }>('POST', '/v1/tenants/a/wake', undefined, as(ADMIN));
    expect(woken.body).toMatchObject({ tenant: 'a', asleep: false, woken: true });
    expect((await t.api<{ woken: boolean }>('POST', '/v1/tenants/a/wake', {}, as(ADMIN))).body.woken).toBe(false);
    await t.settle();
    expect((await t.api<GroupView>('GET', '/v1/groups/a/web')).body.size).toBe(12);
    const audit = t.server.db.listAudit({ tenant: 'a' }).filter((a) => a.action === 'sleep' || a.action === 'wake');
    expect(audit.map((a) => `${a.action} ${a.group} ${a.actor}`)).toEqual(['sleep web operator:team-a/alice', 'sleep worker operator:team-a/alice', 'wake web operator:api', 'wake worker operator:api']);
  });

  it.each([
    ['a time in the past', { until: '2026-01-05T09:00:00Z' }, /putting tenant a to sleep: until 2026-01-05T09:00:00Z is not in the future/],
    ['now', { until: '2026-01-05T10:00:00Z' }, /is not in the future/],
    ['a time more than a year away', { until: '2027-01-06T10:00:00Z' }, /putting tenant a to sleep: until 2027-01-06T10:00:00Z is more than a year away/],
    ['a time that is not ISO-8601', { until: 'tomorrow' }, /putting tenant a to sleep: invalid body: until: until must be an ISO-8601 time/],
    ['an unknown field', { until: '2026-01-05T18:00:00Z', for: '8h' }, /putting tenant a to sleep: invalid body: .*for/],
    ['a body that is not an object', [1], /putting tenant a to sleep: invalid body/],
  ])('refuses a sleep with %s (400) and changes nothing', async (_name, body, message) => {
    ({ server: t } = await start());
    const res = await t.api<{ error: string }>('POST', '/v1/tenants/a/sleep', body);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(message);
    expect(t.server.reconciler.tenantSleep('a')).toBeNull();
    expect(t.server.db.listAudit({ tenant: 'a' }).filter((a) => a.action === 'sleep')).toHaveLength(0);
  });

  it.each([
    ['an unknown field', { until: '2026-01-05T18:00:00Z' }],
    ['a body that is not an object', [1]],
  ])('refuses a wake with %s (400) and keeps the tenant asleep', async (_name, body) => {
    ({ server: t } = await start());
    await t.api('POST', '/v1/tenants/a/sleep', {});
    const res = await t.api<{ error: string }>('POST', '/v1/tenants/a/wake', body);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/^waking tenant a: invalid body: .*\(expected none or \{\}\)$/);
    expect(t.server.reconciler.tenantSleep('a')).not.toBeNull();
  });

  it('answers 404 for a tenant with no groups or one the token may not see, and 403 to a viewer', async () => {
    ({ server: t } = await start());
    expect((await t.api<{ error: string }>('POST', '/v1/tenants/nobody/sleep', {})).body).toEqual({ error: 'putting a tenant to sleep: tenant nobody has no configured groups' });
    expect((await t.api('POST', '/v1/tenants/nobody/wake')).status).toBe(404);
    expect((await t.api('POST', '/v1/tenants/b/sleep', {}, as(TEAM_A))).status).toBe(404);
    expect((await t.api('POST', '/v1/tenants/b/wake', undefined, as(TEAM_A))).status).toBe(404);
    expect((await t.api('POST', '/v1/tenants/a/sleep', {}, as(VIEWER))).status).toBe(403);
    expect((await t.api('POST', '/v1/tenants/a/wake', undefined, as(VIEWER))).status).toBe(403);
    expect(t.server.reconciler.tenantSleep('a')).toBeNull();
    expect(t.server.reconciler.tenantSleep('b')).toBeNull();
  });
});
