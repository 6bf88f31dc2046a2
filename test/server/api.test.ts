import { afterEach, describe, expect, it } from 'vitest';
import type { GroupView, InstanceView } from '../../src/server/views.js';
import { TestServer } from '../helpers/server-harness.js';
import { EventStreamReader } from '../helpers/event-stream.js';

let t: TestServer | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

async function healthy(server: TestServer): Promise<void> {
  for (const i of server.server.db.listInstances()) server.server.db.recordHealth(i.id, new Date());
  await server.settle();
}

describe('admin API', () => {
  it('answers /healthz without a token', async () => {
    t = await new TestServer({ token: 'sekret-token-0123' }).start();
    const res = await fetch(`${t.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true, leader: true });
  });

  it('refuses /v1 calls without the bearer token, or with a wrong one', async () => {
    t = await new TestServer({ token: 'sekret-token-0123' }).start();
    const none = await fetch(`${t.url}/v1/groups`);
    expect(none.status).toBe(401);
    expect(await none.json()).toEqual({ error: 'missing or wrong bearer token' });
    const wrong = await fetch(`${t.url}/v1/groups`, { headers: { Authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    expect((await t.api('GET', '/v1/groups')).status).toBe(200);
  });

  it('refuses requests from another origin', async () => {
    t = await new TestServer().start();
    const res = await t.api('GET', '/v1/groups', undefined, { Origin: 'http://evil.example' });
    expect(res.status).toBe(403);
    expect(res.body).toEqual({ error: 'requests from origin http://evil.example are refused' });
    expect((await t.api('GET', '/v1/groups', undefined, { Origin: t.url })).status).toBe(200);
  });

  it('lists groups and instances as plain objects with the documented fields', async () => {
    t = await new TestServer().start();
    await t.settle();
    await healthy(t);
    const groups = (await t.api<GroupView[]>('GET', '/v1/groups')).body;
    expect(groups).toEqual([expect.objectContaining({ tenant: 'default', group: 'web', size: 2, inService: 2, draining: 0, unhealthy: 0, pending: 0 })]);
    const instances = (await t.api<InstanceView[]>('GET', '/v1/instances?tenant=default&group=web')).body;
    expect(instances).toHaveLength(2);
    for (const i of instances) {
      expect(Object.keys(i)).toEqual(
        expect.arrayContaining(['id', 'tenant', 'group', 'status', 'providerId', 'createdAt', 'healthAt', 'drainStartedAt', 'drainDeadline', 'drainReason']),
      );
      expect(i.createdAt).toMatch(ISO);
      expect(i.healthAt).toMatch(ISO);
      expect(i.drainStartedAt).toBeNull();
    }
    expect((await t.api<InstanceView[]>('GET', '/v1/instances?tenant=other')).body).toEqual([]);
  });

  it.each([
    ['a string size', { size: 'five' }, /size must be a number/],
    ['a negative size', { size: -1 }, /size must be >= 0/],
    ['a fractional size', { size: 1.5 }, /whole number/],
    ['an unknown field', { size: 2, colour: 'red' }, /colour/],
    ['no body', undefined, /expected \{"size": n\}/],
  ])('rejects a size change with %s, naming the problem, and changes nothing', async (_name, body, message) => {
    t = await new TestServer().start();
    await t.settle();
    const res = await t.api<{ error: string }>('PUT', '/v1/groups/default/web/size', body);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(message);
    expect(t.server.db.getGroupState('default', 'web')).toBeNull();
    expect(t.server.db.listAudit({ group: 'web' }).filter((a) => a.action === 'scale')).toHaveLength(0);
  });

  it('rejects malformed JSON with a 400', async () => {
    t = await new TestServer().start();
    const res = await t.api<{ error: string }>('PUT', '/v1/groups/default/web/size', '{"size": ');
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/JSON/i);
  });

  it('answers 404 for a group that is not configured', async () => {
    t = await new TestServer().start();
    const res = await t.api<{ error: string }>('PUT', '/v1/groups/default/nope/size', { size: 1 });
    expect(res.status).toBe(404);
    expect(res.body.error).toBe('group default/nope is not configured');
    expect((await t.api('GET', '/v1/groups/default/nope/plan')).status).toBe(404);
  });

  it('scales a group through the API, audits who asked, and keeps the size across a restart', async () => {
    t = await new TestServer().start();
    await t.settle();
    const res = await t.api('PUT', '/v1/groups/default/web/size', { size: 4 }, { 'X-Drover-Actor': 'alice' });
    expect(res).toMatchObject({ status: 200, body: { tenant: 'default', group: 'web', size: 4, previousSize: 2 } });
    await t.settle();
    expect(t.server.db.listInstances({ tenant: 'default', group: 'web' })).toHaveLength(4);
    expect(t.server.db.listAudit({ group: 'web' }).find((a) => a.action === 'scale')).toMatchObject({ actor: 'operator:alice', detail: 'size 2 -> 4' });

    await t.stop();
    await t.start();
    await t.settle();
    expect((await t.api<GroupView>('GET', '/v1/groups/default/web')).body).toMatchObject({ size: 4, sizeOverride: 4, configuredSize: 2 });
    expect(t.server.db.listInstances({ tenant: 'default', group: 'web' })).toHaveLength(4);
  });

  it('lets a later change of the size in the config file replace the API size', async () => {
    t = await new TestServer().start();
    await t.settle();
    await t.api('PUT', '/v1/groups/default/web/size', { size: 4 });
    await t.settle();
    // An unrelated config edit keeps the operator's size.
    t.writeConfig({ shard: { startupTimeout: '2m' } });
    await expect.poll(() => t!.server.config().shard.startupTimeout, { timeout: 5_000 }).toBe(120_000);
    expect((await t.api<GroupView>('GET', '/v1/groups/default/web')).body.size).toBe(4);
    // Editing the group's size in the file wins.
    t.writeConfig({ groups: { default: { web: { size: 3, template: 'web', drainTimeout: '1m' } } } });
    await expect.poll(async () => (await t!.api<GroupView>('GET', '/v1/groups/default/web')).body.size, { timeout: 5_000 }).toBe(3);
  });

  it('acknowledges a drain (202), refuses one for an instance that is not draining (409) or unknown (404)', async () => {
    t = await new TestServer().start();
    await t.settle();
    await healthy(t);
    const [first] = t.server.db.listInstances();
    const notDraining = await t.api<{ error: string }>('POST', `/v1/instances/${first!.id}/drain-ack`);
    expect(notDraining.status).toBe(409);
    expect(notDraining.body.error).toBe(`instance ${first!.id} is not draining (status running)`);
    expect((await t.api('POST', '/v1/instances/i-unknown/drain-ack')).status).toBe(404);

    await t.api('PUT', '/v1/groups/default/web/size', { size: 1 });
    await t.settle();
    const [draining] = t.server.db.listInstances().filter((i) => i.status === 'draining');
    const ack = await t.api('POST', `/v1/instances/${draining!.id}/drain-ack`);
    expect(ack.status).toBe(202);
    await t.settle();
    expect(t.server.db.getInstance(draining!.id)?.status).toBe('deleted');
  });

  it('serves the dry-run plan of a group', async () => {
    t = await new TestServer().start();
    await t.settle();
    await t.server.reconciler.stop();
    t.writeConfig({ groups: { default: { web: { size: 5, template: 'web' } } } });
    await expect.poll(async () => (await t!.api<{ actions: unknown[] }>('GET', '/v1/groups/default/web/plan')).body.actions.length, { timeout: 5_000 }).toBe(3);
    const plan = (await t.api<{ actions: Array<{ kind: string; reason: string; message: string }> }>('GET', '/v1/groups/default/web/plan')).body;
    expect(plan.actions.every((a) => a.kind === 'create' && a.reason === 'scaleUp' && a.message.length > 0)).toBe(true);
  });

  it('serves the audit trail, filtered by instance and group, and rejects bad paging', async () => {
    t = await new TestServer().start();
    await t.settle();
    const [first] = t.server.db.listInstances();
    const mine = (await t.api<Array<{ instanceId: string; action: string }>>('GET', `/v1/audit?instance=${first!.id}`)).body;
    expect(mine.map((a) => a.action)).toEqual(['create', 'created']);
    expect(mine.every((a) => a.instanceId === first!.id)).toBe(true);
    expect((await t.api<unknown[]>('GET', '/v1/audit?group=default/web')).body.length).toBe(4);
    expect((await t.api<unknown[]>('GET', '/v1/audit?group=default/other')).body).toEqual([]);
    expect((await t.api('GET', '/v1/audit?limit=abc')).status).toBe(400);
  });

  it('streams lifecycle changes and drain notices as server-sent events', async () => {
    t = await new TestServer().start();
    await t.settle();
    await healthy(t);
    const events = await EventStreamReader.open(`${t.url}/v1/events`);
    await t.api('PUT', '/v1/groups/default/web/size', { size: 1 });
    await events.next((e) => e.type === 'drain');
    await events.close();
    expect(events.ofType<{ action: string }>('audit').some((a) => a.action === 'scale')).toBe(true);
    expect(events.ofType<{ reason: string }>('drain').some((d) => d.reason === 'scaleDown')).toBe(true);
  });

  it('keeps the previous config when the file becomes invalid, and says which field is wrong', async () => {
    t = await new TestServer().start();
    await t.settle();
    t.writeRawConfig((await import('yaml')).stringify({ ...t.configObject(), groups: { default: { web: { size: -3, template: 'web' } } } }));
    await expect.poll(async () => (await t!.api<{ configError: string | null }>('GET', '/healthz')).body.configError, { timeout: 5_000 }).toMatch(
      /groups\.default\.web\.size: must be >= 0/,
    );
    expect(t.server.config().groups.default?.web?.size).toBe(2);
    await t.settle();
    expect(t.server.db.listInstances()).toHaveLength(2);
  });
});
