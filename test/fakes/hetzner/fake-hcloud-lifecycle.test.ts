/**
 * The fake Hetzner Cloud API's server life cycle on the injected clock: initializing → starting
 * → running as the create action progresses, deleting → gone, the actions that report it, the
 * cloud's own deletions, pinned statuses, and the boot hooks.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FakeHcloud, type FakeHcloudOptions, type FakeServer, hcloud, type HcloudClient, ManualClock } from './index.js';

let fake: FakeHcloud | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function setup(options: FakeHcloudOptions = {}): Promise<{ fake: FakeHcloud; api: HcloudClient; clock: ManualClock }> {
  const clock = new ManualClock();
  fake = new FakeHcloud({ now: clock.now, ...options });
  return { fake, api: hcloud(await fake.start()), clock };
}

type Obj = Record<string, unknown>;
const create = { name: 'web-1', server_type: 'cpx11', image: 'ubuntu-24.04' };

async function createServer(api: HcloudClient, body: Obj = create): Promise<{ id: number; actionId: number; startActionId?: number }> {
  const res = await api.post('/servers', body);
  expect(res.status).toBe(201);
  const next = res.body.next_actions as Obj[];
  return {
    id: (res.body.server as Obj).id as number,
    actionId: (res.body.action as Obj).id as number,
    ...(next[0] ? { startActionId: next[0].id as number } : {}),
  };
}

async function statusOf(api: HcloudClient, id: number): Promise<unknown> {
  return ((await api.get(`/servers/${id}`)).body.server as Obj).status;
}

async function actionOf(api: HcloudClient, id: number): Promise<Obj> {
  const res = await api.get(`/actions/${id}`);
  expect(res.status).toBe(200);
  return res.body.action as Obj;
}

describe('creation', () => {
  it('goes initializing → starting → running as the create_server action progresses over actionMs', async () => {
    const { api, clock } = await setup({ actionMs: 2000 });
    const { id, actionId } = await createServer(api);
    expect(await statusOf(api, id)).toBe('initializing');
    clock.advance(999);
    expect(await statusOf(api, id)).toBe('initializing');
    expect(await actionOf(api, actionId)).toMatchObject({ status: 'running', progress: 49, finished: null });
    clock.advance(1);
    expect(await statusOf(api, id)).toBe('starting');
    clock.advance(999);
    expect(await statusOf(api, id)).toBe('starting');
    expect(await actionOf(api, actionId)).toMatchObject({ status: 'running', progress: 99 });
    clock.advance(1);
    expect(await statusOf(api, id)).toBe('running');
    expect(await actionOf(api, actionId)).toEqual({
      id: actionId,
      command: 'create_server',
      status: 'success',
      progress: 100,
      started: '2026-01-05T09:00:00+00:00',
      finished: '2026-01-05T09:00:02+00:00',
      resources: [{ id, type: 'server' }],
      error: null,
    });
  });

  it('finishes the start_server next action together with create_server', async () => {
    const { api, clock } = await setup({ actionMs: 2000 });
    const { startActionId } = await createServer(api);
    clock.advance(1500);
    expect(await actionOf(api, startActionId!)).toMatchObject({ command: 'start_server', status: 'running', progress: 50 });
    clock.advance(500);
    expect(await actionOf(api, startActionId!)).toMatchObject({ status: 'success', progress: 100 });
  });

  it('ends off, never starting, without start_after_create', async () => {
    const { api, clock } = await setup({ actionMs: 2000 });
    const { id } = await createServer(api, { ...create, start_after_create: false });
    clock.advance(1500);
    expect(await statusOf(api, id)).toBe('initializing');
    clock.advance(500);
    expect(await statusOf(api, id)).toBe('off');
  });

  it('is running at the first look with actionMs 0', async () => {
    const { api } = await setup({ actionMs: 0 });
    const { id, actionId } = await createServer(api);
    expect(await statusOf(api, id)).toBe('running');
    expect(await actionOf(api, actionId)).toMatchObject({ status: 'success', progress: 100 });
  });

  it('defaults actionMs to 2000 ms', async () => {
    const { api, clock } = await setup();
    const { id } = await createServer(api);
    clock.advance(1999);
    expect(await statusOf(api, id)).toBe('starting');
    clock.advance(1);
    expect(await statusOf(api, id)).toBe('running');
  });
});

describe('actions', () => {
  it('answers a server’s action under /servers/{id}/actions/{action_id}, and 404 for another server’s or an unknown action', async () => {
    const { api } = await setup();
    const a = await createServer(api);
    const b = await createServer(api, { ...create, name: 'web-2' });
    const res = await api.get(`/servers/${a.id}/actions/${a.actionId}`);
    expect(res.status).toBe(200);
    expect(res.body.action).toMatchObject({ id: a.actionId, command: 'create_server' });
    expect((await api.get(`/servers/${b.id}/actions/${a.actionId}`)).status).toBe(404);
    const unknown = await api.get('/actions/1');
    expect(unknown.status).toBe(404);
    expect((unknown.body.error as Obj).code).toBe('not_found');
  });

  it('answers several actions with GET /actions?id=…&id=…', async () => {
    const { api } = await setup();
    const a = await createServer(api);
    const res = await api.get(`/actions?id=${a.actionId}&id=${a.startActionId!}`);
    expect(res.status).toBe(200);
    expect((res.body.actions as Obj[]).map((x) => x.command)).toEqual(['create_server', 'start_server']);
    expect((await api.get('/actions')).status).toBe(400);
  });
});

describe('DELETE /servers/{id}', () => {
  it('answers 200 with a delete_server action, shows the server deleting, and 404s it once the action succeeds after deleteMs', async () => {
    const { api, clock } = await setup({ actionMs: 0, deleteMs: 3000 });
    const { id } = await createServer(api);
    const res = await api.delete(`/servers/${id}`);
    expect(res.status).toBe(200);
    const action = res.body.action as Obj;
    expect(action).toMatchObject({ command: 'delete_server', status: 'running', progress: 0, resources: [{ id, type: 'server' }] });
    expect(await statusOf(api, id)).toBe('deleting');
    clock.advance(2999);
    expect(fake!.server(id)?.status).toBe('deleting');
    clock.advance(1);
    const gone = await api.get(`/servers/${id}`);
    expect(gone.status).toBe(404);
    expect((gone.body.error as Obj).code).toBe('not_found');
    expect(await actionOf(api, action.id as number)).toMatchObject({ status: 'success', progress: 100, finished: '2026-01-05T09:00:03+00:00' });
    expect(((await api.get('/servers')).body.servers as Obj[]).length).toBe(0);
    expect(fake!.servers()).toEqual([]);
  });

  it('answers the delete already under way when a deleting server is deleted again, and 404 once it is gone', async () => {
    const { api, clock } = await setup({ deleteMs: 1000 });
    const { id } = await createServer(api);
    const first = (await api.delete(`/servers/${id}`)).body.action as Obj;
    clock.advance(500);
    const again = await api.delete(`/servers/${id}`);
    expect(again.status).toBe(200);
    expect((again.body.action as Obj).id).toBe(first.id);
    expect((again.body.action as Obj).progress).toBe(50);
    clock.advance(500);
    expect((await api.delete(`/servers/${id}`)).status).toBe(404);
    expect((await api.delete('/servers/4242')).status).toBe(404);
  });

  it('frees the name once the server is gone', async () => {
    const { api, clock } = await setup({ deleteMs: 1000 });
    const { id } = await createServer(api);
    await api.delete(`/servers/${id}`);
    clock.advance(1000);
    expect((await api.post('/servers', create)).status).toBe(201);
  });
});

describe('controls and hooks', () => {
  it('setStatus pins a server in a status until it is deleted', async () => {
    const { api, clock } = await setup({ actionMs: 1000 });
    const { id } = await createServer(api);
    expect(fake!.setStatus(id, 'initializing').status).toBe('initializing');
    clock.advance(60_000);
    expect(await statusOf(api, id)).toBe('initializing');
    fake!.setStatus(id, 'off');
    expect(await statusOf(api, id)).toBe('off');
    await api.delete(`/servers/${id}`);
    expect(await statusOf(api, id)).toBe('deleting');
    expect(() => fake!.setStatus(4242, 'off')).toThrow(/no server 4242/);
  });

  it('deleteExternally deletes as the Console would: deleting, then gone, with onDelete fired once', async () => {
    const deleted: FakeServer[] = [];
    const { api, clock } = await setup({ deleteMs: 1000, onDelete: (s) => deleted.push(s) });
    const { id } = await createServer(api);
    const action = fake!.deleteExternally(id);
    expect(action).toMatchObject({ command: 'delete_server', status: 'running' });
    expect(await statusOf(api, id)).toBe('deleting');
    await api.delete(`/servers/${id}`);
    clock.advance(1000);
    expect((await api.get(`/servers/${id}`)).status).toBe(404);
    expect(deleted.map((s) => [s.id, s.status])).toEqual([[id, 'deleting']]);
    expect(fake!.action(action.id)?.status).toBe('success');
    expect(fake!.count('delete_server')).toBe(1);
  });

  it('calls onCreate with the server and its user data, and keeps hook errors without failing the request', async () => {
    const created: Array<FakeServer & { userData: string }> = [];
    const { api } = await setup({
      onCreate: (s) => {
        created.push(s);
        if (s.name === 'boom') throw new Error('agent failed to start');
      },
    });
    const { id } = await createServer(api, { ...create, user_data: '#cloud-config\nruncmd: [drover-agent]\n', location: 'nbg1', labels: { g: 'web' } });
    expect(created).toHaveLength(1);
    expect(created[0]).toMatchObject({
      id,
      name: 'web-1',
      status: 'initializing',
      serverType: 'cpx11',
      image: 'ubuntu-24.04',
      location: 'nbg1',
      datacenter: 'nbg1-dc3',
      networkZone: 'eu-central',
      labels: { g: 'web' },
      userData: '#cloud-config\nruncmd: [drover-agent]\n',
    });
    expect((await api.post('/servers', { ...create, name: 'boom' })).status).toBe(201);
    expect(fake!.hookErrors).toHaveLength(1);
    expect(String(fake!.hookErrors[0])).toContain('agent failed to start');
  });

  it('introspects servers by ID and by name, and returns copies the test cannot use to change the fake', async () => {
    const { api } = await setup();
    const { id } = await createServer(api, { ...create, labels: { a: '1' } });
    const s = fake!.server(id)!;
    s.labels.a = 'changed';
    expect(fake!.server(id)?.labels).toEqual({ a: '1' });
    expect(fake!.serverByName('web-1')?.id).toBe(id);
    expect(fake!.serverByName('nope')).toBeUndefined();
    expect(fake!.server(1)).toBeUndefined();
  });
});
