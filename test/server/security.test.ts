/**
 * The door: every route is private unless it is on the public list, whatever the request target
 * looks like; the Host header must name this server; tokens have roles and tenants.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteInfo } from '../../src/server/http.js';
import { rawRequest, type RawResponse } from '../helpers/raw-http.js';
import { TestServer } from '../helpers/server-harness.js';

const ADMIN = 'admin-token-0123456789';
const VIEWER = 'viewer-token-0123456789';
const TEAM_A = 'team-a-token-0123456789';
const FILE_ADMIN = 'file-admin-token-0123456789';
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

const GROUPS = { default: { web: { size: 2, template: 'web' } }, a: { web: { size: 1, template: 'web' } }, b: { web: { size: 1, template: 'web' } } };
// Nothing happens by itself during these tests: no agent reports, and nothing times out.
const QUIET = { healthCheckInterval: '1h', startupTimeout: '2h', resyncInterval: '0s' };

let t: TestServer;
let port: string;
let instanceIn: Record<string, string>;

beforeAll(async () => {
  process.env.DROVER_TEST_VIEWER_TOKEN = VIEWER;
  t = new TestServer({ token: ADMIN, groups: GROUPS, shard: QUIET });
  const tokenFile = join(t.dir, 'ops.token');
  writeFileSync(tokenFile, `${FILE_ADMIN}\n`, { mode: 0o600 });
  t.writeConfig({
    server: {
      tokens: [
        { name: 'grafana', env: 'DROVER_TEST_VIEWER_TOKEN', role: 'viewer' },
        { name: 'team-a', sha256: sha256(TEAM_A), role: 'operator', tenants: ['a'] },
        { name: 'ops', file: tokenFile, role: 'admin' },
      ],
      allowedHosts: ['drover.internal'],
    },
  });
  await t.start();
  await t.settle();
  port = new URL(t.url).port;
  instanceIn = {};
  for (const i of t.server.db.listInstances()) instanceIn[i.tenant] ??= i.id;
});

afterAll(async () => {
  await t.close();
  delete process.env.DROVER_TEST_VIEWER_TOKEN;
});

const send = (target: string, init: { method?: string; token?: string; headers?: Record<string, string>; body?: string } = {}): Promise<RawResponse> =>
  rawRequest(t.url, {
    method: init.method ?? 'GET',
    target,
    headers: { ...(init.token ? { authorization: `Bearer ${init.token}` } : {}), ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}), ...init.headers },
    ...(init.body !== undefined ? { body: init.body } : {}),
  });

/** A concrete path for a route pattern: a group and an instance that exist. */
function concrete(route: RouteInfo): string {
  return route.url
    .replace(':tenant', 'default')
    .replace(':group', 'web')
    .replace(':id', instanceIn.default ?? 'none')
    .replace(':name', 'index.js')
    .replace(':file', 'favicon.svg')
    .replace('*', '');
}

/** The same target written the ways that once got past a prefix check. */
function disguises(path: string): Record<string, string> {
  const segments = path.split('/').slice(1);
  const hex = (c: string): string => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  return {
    'first letter of each segment encoded': `/${segments.map((s) => (s ? hex(s[0]!) + s.slice(1) : s)).join('/')}`,
    'every character encoded, upper case hex': `/${segments.map((s) => [...s].map((c) => hex(c).toUpperCase()).join('')).join('/')}`,
    'doubled slashes': `//${segments.join('//')}`,
    'a dot segment': `/./${segments.join('/')}`,
    'a parent segment': `/nothing/../${segments.join('/')}`,
    'an encoded parent segment': `/nothing/%2e%2E/${segments.join('/')}`,
    'absolute form': `http://127.0.0.1:${port}${path}`,
  };
}

describe('authentication is decided on the matched route', () => {
  it('lists a route for every part of the API, each with the access it needs', () => {
    const routes = t.server.routes();
    const publicOnes = routes.filter((r) => r.access === 'public').map((r) => `${r.method} ${r.url}`);
    expect(publicOnes.sort()).toEqual(
      ['GET /', 'GET /:file', 'GET /assets/:name', 'GET /healthz', 'GET /index.html', 'GET /metrics', 'HEAD /', 'HEAD /:file', 'HEAD /assets/:name', 'HEAD /healthz', 'HEAD /index.html', 'HEAD /metrics', 'POST /v1/agent/bootstrap'].sort(),
    );
    // The one public /v1 route: an agent's bootstrap exchange, authenticated by its one-time token.
    expect(routes.filter((r) => r.url.startsWith('/v1/') && r.access === 'public').map((r) => r.url)).toEqual(['/v1/agent/bootstrap']);
  });

  it('answers every private route, however its target is written, as its plain path: 401 without a token', async () => {
    const routes = t.server.routes().filter((r) => r.access !== 'public');
    expect(routes.length).toBeGreaterThan(15);
    for (const route of routes) {
      const path = concrete(route);
      const plain = await send(path, { method: route.method });
      expect(plain.status, `${route.method} ${path}`).toBe(401);
      for (const [how, target] of Object.entries(disguises(path))) {
        const res = await send(target, { method: route.method, body: route.method === 'GET' || route.method === 'HEAD' ? undefined : '{"size":0}' });
        expect(res.status, `${route.method} ${target} (${how})`).toBe(401);
      }
    }
    // Nothing was changed by any of them.
    expect(t.server.db.listAudit().filter((a) => a.action === 'scale' || a.actor.startsWith('operator'))).toEqual([]);
  });

  it('gives a reader with a token the same answer through every disguise as through the plain path', async () => {
    const reads = t.server.routes().filter((r) => r.access !== 'public' && r.method === 'GET' && r.url !== '/v1/events');
    for (const route of reads) {
      const path = concrete(route);
      const plain = await send(path, { token: VIEWER });
      expect(plain.status, `GET ${path}`).toBe(200);
      for (const [how, target] of Object.entries(disguises(path))) {
        const res = await send(target, { token: VIEWER });
        expect(res.status, `GET ${target} (${how})`).toBe(plain.status);
      }
    }
  });

  it('refuses targets that cannot be made plain with 400 and the API\'s error shape', async () => {
    for (const target of ['/v1%2Fgroups', '/v1/groups%5c..', '/v1/%E0%A4%A', '/v1/gr%00oups', 'ftp://127.0.0.1/v1/groups', '*']) {
      const res = await send(target, { token: ADMIN });
      expect(res.status, target).toBe(400);
      expect(res.json, target).toEqual({ error: expect.any(String) });
    }
  });

  it('matches the Bearer scheme case-insensitively and refuses other schemes', async () => {
    for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
      expect((await send('/v1/groups', { headers: { authorization: `${scheme} ${VIEWER}` } })).status, scheme).toBe(200);
    }
    expect((await send('/v1/groups', { headers: { authorization: `Basic ${Buffer.from(`x:${VIEWER}`).toString('base64')}` } })).status).toBe(401);
    expect((await send('/v1/groups', { headers: { authorization: `Bearer ${VIEWER.slice(0, -1)}` } })).status).toBe(401);
    expect((await send('/v1/groups', { headers: { authorization: `Bearer ${VIEWER}x` } })).status).toBe(401);
  });

  it('serves the public list without a token', async () => {
    expect((await send('/healthz')).status).toBe(200);
    expect((await send('/metrics')).status).toBe(200);
    expect((await send('/%68ealthz')).status).toBe(200);
  });
});

describe('the Host header must name this server', () => {
  it('answers 421 to a name it is not reached by (DNS rebinding), with a message', async () => {
    for (const host of ['evil.example', 'evil.example:80', `attacker.test:${port}`, '127.0.0.1.evil.example']) {
      const res = await send('/healthz', { headers: { host } });
      expect(res.status, host).toBe(421);
      expect((res.json as { error: string }).error).toMatch(/does not answer to the name/);
    }
  });

  it('accepts its listen address, loopback names, IP literals and server.allowedHosts', async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'LOCALHOST', '[::1]:7400', '10.1.2.3', `drover.internal:${port}`]) {
      expect((await send('/healthz', { headers: { host } })).status, host).toBe(200);
    }
  });

  it('refuses a cross-origin page even when the Host is right', async () => {
    const res = await send('/v1/groups', { token: ADMIN, headers: { origin: 'http://evil.example' } });
    expect(res.status).toBe(403);
    expect((await send('/v1/groups', { token: ADMIN, headers: { origin: `http://127.0.0.1:${port}` } })).status).toBe(200);
  });
});

describe('scoped tokens', () => {
  it('tells a caller who it is', async () => {
    expect((await send('/v1/whoami', { token: TEAM_A })).json).toEqual({ name: 'team-a', role: 'operator', tenants: ['a'], authRequired: true });
    expect((await send('/v1/whoami', { token: VIEWER })).json).toMatchObject({ name: 'grafana', role: 'viewer', tenants: null });
    expect((await send('/v1/whoami', { token: FILE_ADMIN })).json).toMatchObject({ name: 'ops', role: 'admin' });
  });

  it('lets a viewer read everything and change nothing', async () => {
    expect((await send('/v1/groups', { token: VIEWER })).status).toBe(200);
    const scale = await send('/v1/groups/default/web/size', { method: 'PUT', token: VIEWER, body: '{"size":3}' });
    expect(scale.status).toBe(403);
    expect((scale.json as { error: string }).error).toMatch(/grafana \(role viewer\).*operator role/);
    expect((await send(`/v1/instances/${instanceIn.default}/protection`, { method: 'PUT', token: VIEWER, body: '{"for":"1h"}' })).status).toBe(403);
    expect(t.server.reconciler.effectiveSettings(t.server.config(), 'default', 'web')?.size).toBe(2);
  });

  it('shows a tenant-scoped token only its tenants, and answers others as if they did not exist', async () => {
    const groups = (await send('/v1/groups', { token: TEAM_A })).json as Array<{ tenant: string }>;
    expect(groups.map((g) => g.tenant)).toEqual(['a']);
    const instances = (await send('/v1/instances', { token: TEAM_A })).json as Array<{ tenant: string }>;
    expect(new Set(instances.map((i) => i.tenant))).toEqual(new Set(['a']));
    expect((await send('/v1/instances?tenant=b', { token: TEAM_A })).json).toEqual([]);
    const audit = (await send('/v1/audit', { token: TEAM_A })).json as Array<{ tenant: string }>;
    expect(audit.length).toBeGreaterThan(0);
    expect(audit.every((a) => a.tenant === 'a')).toBe(true);
    const hidden = await send('/v1/groups/b/web', { token: TEAM_A });
    const missing = await send('/v1/groups/zz/web', { token: TEAM_A });
    expect(hidden.status).toBe(404);
    expect(hidden.text.replace('b/web', '?')).toBe(missing.text.replace('zz/web', '?'));
    expect((await send(`/v1/instances/${instanceIn.b}`, { token: TEAM_A })).status).toBe(404);
    expect((await send(`/v1/instances/${instanceIn.b}/drain`, { method: 'POST', token: TEAM_A })).status).toBe(404);
    expect((await send('/v1/groups/b/web/size', { method: 'PUT', token: TEAM_A, body: '{"size":4}' })).status).toBe(404);
    expect(t.server.reconciler.effectiveSettings(t.server.config(), 'b', 'web')?.size).toBe(1);
  });

  it('lets an operator act in its tenant, and names the token in the audit', async () => {
    const res = await send('/v1/groups/a/web/size', { method: 'PUT', token: TEAM_A, body: '{"size":2}', headers: { 'x-drover-actor': 'alice' } });
    expect(res.status).toBe(200);
    const entry = t.server.db.listAudit({ tenant: 'a' }).find((e) => e.action === 'scale');
    expect(entry?.actor).toBe('operator:team-a/alice');
    await send('/v1/groups/a/web/size', { method: 'PUT', token: TEAM_A, body: '{"size":1}' });
    expect(t.server.db.listAudit({ tenant: 'a' }).filter((e) => e.action === 'scale').map((e) => e.actor)).toEqual(['operator:team-a/alice', 'operator:team-a']);
  });

  it('streams only a scoped token\'s own tenants\' events', async () => {
    const controller = new AbortController();
    const res = await fetch(`${t.url}/v1/events`, { headers: { authorization: `Bearer ${TEAM_A}` }, signal: controller.signal });
    const reader = res.body!.getReader();
    let text = '';
    const readUntil = async (pattern: RegExp): Promise<void> => {
      while (!pattern.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error('stream ended');
        text += new TextDecoder().decode(value);
      }
    };
    await readUntil(/event: hello/);
    // A change in b, then one in a: only a's reaches this stream (events are in order).
    expect((await send('/v1/groups/b/web/size', { method: 'PUT', token: ADMIN, body: '{"size":1}' })).status).toBe(200);
    expect((await send('/v1/groups/a/web/size', { method: 'PUT', token: ADMIN, body: '{"size":1}' })).status).toBe(200);
    await readUntil(/"tenant":"a"[^\n]*"action":"scale"|"action":"scale"[^\n]*"tenant":"a"/);
    controller.abort();
    expect(text).not.toMatch(/"tenant":"b"/);
  });
});

describe('random requests (property)', () => {
  const segment = fc.oneof(
    fc.constantFrom('v1', 'groups', 'instances', 'audit', 'events', 'whoami', 'default', 'a', 'b', 'web', 'size', 'plan', 'drain', 'drain-ack', 'drain-extend', 'protection', 'healthz', 'metrics', '..', '.', '', '%76%31', 'v%31', '%2e%2e', 'assets', 'index.html'),
    fc.stringMatching(/^[A-Za-z0-9._~%-]{0,12}$/),
  );
  const request = fc.record({
    method: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'),
    segments: fc.array(segment, { maxLength: 6 }),
    absolute: fc.boolean(),
    auth: fc.constantFrom<string | null>(null, 'Bearer wrong-token-0123456789', 'bearer ', 'Basic abc', `Bearer ${VIEWER}x`, 'Bearer', `Bearer ${TEAM_A}`),
    host: fc.constantFrom<string | null>(null, 'evil.example', 'localhost', 'x'),
    body: fc.oneof(fc.constant<string | undefined>(undefined), fc.constantFrom('{}', '{"size":5}', '{"for":"1h"}', '{"by":"99999999999d"}', '[', 'null', ''), fc.json({ maxDepth: 2 })),
  });

  it('never answers 5xx, never 2xx with private data without a valid token, and a refused request changes nothing', async () => {
    const snapshot = (): string => JSON.stringify([t.server.db.listAudit({ limit: 5 }).map((a) => a.seq), t.server.db.listOperatorState(), t.server.db.listInstances().map((i) => [i.id, i.status])]);
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const path = `/${r.segments.join('/')}`;
        const target = r.absolute ? `http://127.0.0.1:${port}${path}` : path;
        const before = snapshot();
        const valid = r.auth === `Bearer ${TEAM_A}`;
        const res = await send(target, {
          method: r.method,
          headers: { ...(r.auth !== null ? { authorization: r.auth } : {}), ...(r.host !== null ? { host: r.host } : {}) },
          ...(r.body !== undefined ? { body: r.body } : {}),
        });
        expect(res.status, `${r.method} ${target}`).toBeLessThan(500);
        if (!valid && res.status >= 200 && res.status < 300) {
          // Only the public list: health, metrics, the dashboard's files. (A HEAD has no body: its GET tells what it serves.)
          expect(['GET', 'HEAD']).toContain(r.method);
          const seen = r.method === 'HEAD' ? await send(target, { headers: { ...(r.auth !== null ? { authorization: r.auth } : {}), ...(r.host !== null ? { host: r.host } : {}) } }) : res;
          const type = String(seen.headers['content-type'] ?? '');
          const isHealth = typeof seen.json === 'object' && seen.json !== null && 'version' in seen.json && 'leader' in seen.json;
          expect(isHealth || /^text\/(plain; version|html|javascript|css)|^image\//.test(type), `${r.method} ${target}: ${type} ${seen.text.slice(0, 80)}`).toBe(true);
        }
        if (res.status >= 400) expect(snapshot(), `${r.method} ${target}`).toBe(before);
      }),
      { numRuns: 250 },
    );
  });
});

describe('API nits', () => {
  it('accepts a bodiless POST sent with content-type application/json as no body', async () => {
    const res = await send(`/v1/instances/${instanceIn.default}/drain-ack`, { method: 'POST', token: ADMIN, body: '' });
    expect(res.status).toBe(409);
    expect((res.json as { error: string }).error).toMatch(/is not draining/);
  });

  it('answers a target that is too long with the API\'s error shape', async () => {
    const res = await send(`/v1/instances/${'x'.repeat(20_000)}`, { token: ADMIN });
    expect(res.status).toBe(431);
    expect(res.json).toEqual({ error: 'the request target or headers are too long' });
    const longParam = await send(`/v1/instances/${'x'.repeat(300)}`, { token: ADMIN });
    expect(longParam.status).toBe(414);
    expect(longParam.json).toEqual({ error: expect.any(String) });
  });
});
