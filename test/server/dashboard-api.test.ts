/**
 * The server side of the web dashboard: static files at `/`, the plan preview for another size,
 * and the `health` event (pending -> in service) that lets the page update without polling.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { registerStatic } from '../../src/server/static.js';
import { TestServer } from '../helpers/server-harness.js';
import { EventStreamReader } from '../helpers/event-stream.js';

let t: TestServer | undefined;
let dir: string | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

interface PlanBody {
  summary: { size: number };
  actions: Array<{ kind: string; instanceId?: string; reason?: string }>;
}

describe('static dashboard files', () => {
  it('serves index.html at / with a strict CSP, hashed assets with a long cache, and nothing outside the build', async () => {
    dir = mkdtempSync(join(tmpdir(), 'drover-web-'));
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>Drover</title>');
    writeFileSync(join(dir, 'assets', 'index-abc123.js'), 'console.log(1)');
    writeFileSync(join(dir, 'favicon.svg'), '<svg/>');
    writeFileSync(join(dir, '..', 'secret.txt'), 'no');
    const app = Fastify();
    registerStatic(app, dir);
    await app.ready();
    const index = await app.inject({ method: 'GET', url: '/' });
    expect(index.statusCode).toBe(200);
    expect(index.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(index.headers['cache-control']).toBe('no-cache');
    expect(index.headers['content-security-policy']).toContain("connect-src 'self'");
    expect(index.body).toContain('<title>Drover</title>');
    const asset = await app.inject({ method: 'GET', url: '/assets/index-abc123.js' });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(asset.headers['cache-control']).toContain('immutable');
    expect((await app.inject({ method: 'GET', url: '/favicon.svg' })).headers['content-type']).toBe('image/svg+xml');
    expect((await app.inject({ method: 'GET', url: '/assets/..%2Fsecret.txt' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/assets/missing.js' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/..%2Fsecret.txt' })).statusCode).toBe(404);
    await app.close();
    rmSync(join(dir, '..', 'secret.txt'));
  });

  it('says how to build the dashboard when it is missing', async () => {
    const app = Fastify();
    registerStatic(app, null);
    const res = await app.inject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(404);
    expect(res.body).toContain('npm run build');
    await app.close();
  });

  it('serves the page without a token while /v1 still needs one', async () => {
    t = await new TestServer({ token: 'sekret-token-0123' }).start();
    const page = await fetch(`${t.url}/`);
    // 200 once `npm run build` has built dist/web; 404 with the hint before.
    expect([200, 404]).toContain(page.status);
    expect((await fetch(`${t.url}/v1/groups`)).status).toBe(401);
  });
});

describe('plan preview for another size', () => {
  it('plans creates for a larger size and drains for a smaller one, without applying anything', async () => {
    t = await new TestServer().start();
    await t.settle();
    for (const i of t.server.db.listInstances()) t.server.db.recordHealth(i.id, new Date());
    await t.settle();
    const up = (await t.api<PlanBody>('GET', '/v1/groups/default/web/plan?size=4')).body;
    expect(up.summary.size).toBe(4);
    expect(up.actions.filter((a) => a.kind === 'create')).toHaveLength(2);
    const down = (await t.api<PlanBody>('GET', '/v1/groups/default/web/plan?size=1')).body;
    expect(down.actions.filter((a) => a.kind === 'drain')).toEqual([expect.objectContaining({ reason: 'scaleDown' })]);
    const now = (await t.api<PlanBody>('GET', '/v1/groups/default/web/plan')).body;
    expect(now.summary.size).toBe(2);
    expect(now.actions).toEqual([]);
    await t.settle();
    expect(t.server.db.liveInstances('default', 'web')).toHaveLength(2);
  });

  it('refuses a size that is not a whole number from 0', async () => {
    t = await new TestServer().start();
    const bad = await t.api<{ error: string }>('GET', '/v1/groups/default/web/plan?size=-1');
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe('invalid size: size: size must be >= 0');
    expect((await t.api<{ error: string }>('GET', '/v1/groups/default/web/plan?size=abc')).body.error).toMatch(/size must be a number/);
  });
});

describe('health event', () => {
  it('announces the first health report of an instance on /v1/events', async () => {
    t = await new TestServer().start();
    await t.settle();
    const events = await EventStreamReader.open(`${t.url}/v1/events`);
    const [first] = t.server.db.listInstances();
    t.server.db.recordHealth(first!.id, new Date());
    const health = await events.next((e) => e.type === 'health');
    await events.close();
    expect(health.data).toMatchObject({ instanceId: first!.id, tenant: 'default', group: 'web' });
  });
});
