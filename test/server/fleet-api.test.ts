/**
 * The fleet view's routes at any fleet size: `GET /v1/groups` a page at a time (cursor, `Link:
 * rel="next"`, a hard cap, tenant and text filters) and `GET /v1/fleet` (totals counted in SQL),
 * both scoped to the tenants a token may see.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { templateHash } from '../../src/index.js';
import type { FleetView, GroupView } from '../../src/server/views.js';
import { TestServer, type ApiResponse } from '../helpers/server-harness.js';

const ADMIN = 'admin-token-0123456789';
const TEAM_A = 'team-a-token-0123456789';
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

// Configured in an order that is not (tenant, group) order, to show the pages are sorted.
const GROUPS = {
  b: { web: { size: 1, template: 'web' }, api: { size: 2, template: 'web' } },
  a: { zeta: { size: 1, template: 'web' }, alpha: { size: 1, template: 'web' }, mid: { size: 0, template: 'web' } },
};

let t: TestServer;

const asTeamA = <T>(path: string): Promise<ApiResponse<T>> => t.api<T>('GET', path, undefined, { Authorization: `Bearer ${TEAM_A}` });
const keys = (groups: GroupView[]): string[] => groups.map((g) => `${g.tenant}/${g.group}`);
const nextLink = (headers: Headers): string | null => /<([^>]+)>; rel="next"/.exec(headers.get('link') ?? '')?.[1] ?? null;

beforeAll(async () => {
  t = new TestServer({
    token: ADMIN,
    groups: GROUPS,
    shard: { healthCheckInterval: '1h', startupTimeout: '2h', resyncInterval: '0s', groupRemovalGrace: '1h' },
    server: { tokens: [{ name: 'team-a', sha256: sha256(TEAM_A), role: 'viewer', tenants: ['a'] }] },
  });
  await t.start();
  await t.settle();
  // A group no longer configured that still has an instance (left by an earlier config).
  t.server.db.insertInstance({
    id: 'i-left-over',
    tenant: 'a',
    group: 'gone',
    templateName: 'web',
    templateHash: templateHash({ image: 'web:1' }),
    createReason: 'scaleUp',
    createdAt: new Date(),
    status: 'running',
    providerId: 'sim-left-over',
  });
});

afterAll(async () => {
  await t.close();
});

describe('GET /v1/groups, a page at a time', () => {
  it('lists every group in (tenant, group) order, configured or with instances left, by default in one page', async () => {
    const res = await t.api<GroupView[]>('GET', '/v1/groups');
    expect(res.status).toBe(200);
    expect(keys(res.body)).toEqual(['a/alpha', 'a/gone', 'a/mid', 'a/zeta', 'b/api', 'b/web']);
    expect(res.body.find((g) => g.group === 'gone')).toMatchObject({ configured: false, live: 1 });
    expect(res.body.find((g) => g.group === 'api')).toMatchObject({ configured: true, size: 2, live: 2 });
    expect(nextLink(res.headers)).toBeNull();
  });

  it('gives a full page a Link to the next, and following the links gives every group once', async () => {
    const seen: string[] = [];
    let path: string | null = '/v1/groups?limit=4';
    let pages = 0;
    while (path) {
      const res: ApiResponse<GroupView[]> = await t.api<GroupView[]>('GET', path);
      expect(res.status).toBe(200);
      expect(res.body.length).toBeLessThanOrEqual(4);
      seen.push(...keys(res.body));
      path = nextLink(res.headers);
      pages++;
    }
    expect(pages).toBe(2);
    expect(seen).toEqual(['a/alpha', 'a/gone', 'a/mid', 'a/zeta', 'b/api', 'b/web']);
  });

  it('filters by tenant and by text in "tenant/group"', async () => {
    expect(keys((await t.api<GroupView[]>('GET', '/v1/groups?tenant=b')).body)).toEqual(['b/api', 'b/web']);
    expect(keys((await t.api<GroupView[]>('GET', '/v1/groups?q=a/')).body)).toEqual(['a/alpha', 'a/gone', 'a/mid', 'a/zeta']);
    expect(keys((await t.api<GroupView[]>('GET', '/v1/groups?q=on')).body)).toEqual(['a/gone']);
  });

  it('refuses a page over 1,000 groups and a cursor that is not "tenant/group", naming the field', async () => {
    const big = await t.api<{ error: string }>('GET', '/v1/groups?limit=1001');
    expect(big.status).toBe(400);
    expect(big.body.error).toMatch(/limit must be a whole number from 1 to 1000/);
    const bad = await t.api<{ error: string }>('GET', '/v1/groups?after=nonsense');
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/^after: /);
  });

  it("shows a tenant-scoped token only its tenants' groups, however it filters", async () => {
    expect(keys((await asTeamA<GroupView[]>('/v1/groups')).body)).toEqual(['a/alpha', 'a/gone', 'a/mid', 'a/zeta']);
    expect((await asTeamA<GroupView[]>('/v1/groups?tenant=b')).body).toEqual([]);
    expect(keys((await asTeamA<GroupView[]>('/v1/groups?after=a/zeta')).body)).toEqual([]);
  });
});

describe('GET /v1/fleet', () => {
  it('counts groups and live instances by status, as the instance list has them', async () => {
    const res = await t.api<FleetView>('GET', '/v1/fleet');
    expect(res.status).toBe(200);
    const instances = (await t.api<Array<{ status: string }>>('GET', '/v1/instances')).body;
    const running = instances.filter((i) => i.status === 'running').length;
    expect(res.body).toEqual({
      tenants: 2,
      groups: 6,
      configuredGroups: 5,
      instances: instances.length,
      byStatus: { creating: 0, running, draining: 0, deleting: 0 },
    });
    // 5 configured instances and the one left over.
    expect(instances.length).toBe(6);
  });

  it('counts only the tenants a scoped token may see', async () => {
    const res = await asTeamA<FleetView>('/v1/fleet');
    expect(res.body).toMatchObject({ tenants: 1, groups: 4, configuredGroups: 3, instances: 3 });
  });
});
