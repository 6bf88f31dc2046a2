/**
 * The fake Hetzner Cloud API's server routes over real HTTP with plain fetch: what POST /servers
 * accepts, refuses and answers; listing with filters, label selectors and pagination; updates.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FakeHcloud, type FakeHcloudOptions, hcloud, type HcloudClient, ManualClock, MAX_USER_DATA_BYTES } from './index.js';

let fake: FakeHcloud | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function setup(options: FakeHcloudOptions = {}): Promise<{ fake: FakeHcloud; api: HcloudClient; clock: ManualClock; endpoint: string }> {
  const clock = new ManualClock();
  fake = new FakeHcloud({ now: clock.now, ...options });
  const endpoint = await fake.start();
  return { fake, api: hcloud(endpoint), clock, endpoint };
}

const create = { name: 'web-1', server_type: 'cpx11', image: 'ubuntu-24.04' };

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => v as Obj;
const errorOf = (body: Obj): { code: string; message: string; details: { fields?: Array<{ name: string; messages?: string[] }> } | null } =>
  body.error as { code: string; message: string; details: { fields?: Array<{ name: string; messages?: string[] }> } | null };

describe('start()', () => {
  it('answers a loopback base URL ending in /v1, as HCLOUD_ENDPOINT holds it', async () => {
    const { endpoint } = await setup();
    expect(endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
  });
});

describe('POST /servers', () => {
  it('answers 201 with the server initializing, its create_server action, a start_server next action and a root password', async () => {
    const { api, clock } = await setup();
    const res = await api.post('/servers', { ...create, labels: { 'drover.dev/group': 'web', slot: '' } });
    expect(res.status).toBe(201);
    expect(res.headers.get('content-type')).toBe('application/json');
    const server = obj(res.body.server);
    expect(server).toMatchObject({
      name: 'web-1',
      status: 'initializing',
      created: '2026-01-05T09:00:00+00:00',
      labels: { 'drover.dev/group': 'web', slot: '' },
      server_type: { name: 'cpx11', cores: 2, architecture: 'x86' },
      image: { name: 'ubuntu-24.04', type: 'system', architecture: 'x86' },
      datacenter: { name: 'fsn1-dc14', location: { name: 'fsn1', network_zone: 'eu-central' } },
      private_net: [],
      protection: { delete: false, rebuild: false },
    });
    expect(server.id).toEqual(expect.any(Number));
    expect(obj(obj(server.public_net).ipv4).ip).toMatch(/^198\.1[89]\.\d+\.\d+$/);
    expect(res.body.action).toEqual({
      id: expect.any(Number),
      command: 'create_server',
      status: 'running',
      progress: 0,
      started: '2026-01-05T09:00:00+00:00',
      finished: null,
      resources: [{ id: server.id, type: 'server' }],
      error: null,
    });
    expect(res.body.next_actions).toEqual([expect.objectContaining({ command: 'start_server', status: 'running', resources: [{ id: server.id, type: 'server' }] })]);
    expect(res.body.root_password).toEqual(expect.any(String));
    clock.advance(1);
    expect(fake!.server(server.id as number)?.name).toBe('web-1');
  });

  it('answers root_password null when SSH keys are given, and no next action without start_after_create', async () => {
    const { api } = await setup();
    const res = await api.post('/servers', { ...create, ssh_keys: ['drover', 42], start_after_create: false });
    expect(res.status).toBe(201);
    expect(res.body.root_password).toBeNull();
    expect(res.body.next_actions).toEqual([]);
    expect(fake!.serverByName('web-1')?.sshKeys).toEqual(['drover', 42]);
  });

  it('takes server_type, image and location by ID as well as by name, and places arm types with arm images', async () => {
    const { api } = await setup();
    const byId = await api.post('/servers', { name: 'a', server_type: 22, image: 161547269, location: 2 });
    expect(byId.status).toBe(201);
    expect(obj(byId.body.server)).toMatchObject({ server_type: { name: 'cpx11' }, image: { id: 161547269 }, datacenter: { location: { name: 'nbg1' } } });
    const arm = await api.post('/servers', { name: 'b', server_type: 'cax11', image: 'ubuntu-24.04', location: 'hel1' });
    expect(obj(arm.body.server)).toMatchObject({ server_type: { architecture: 'arm' }, image: { id: 161547270, architecture: 'arm' } });
  });

  it('keeps networks, firewalls and public_net choices', async () => {
    const { api } = await setup();
    const res = await api.post('/servers', { ...create, networks: [4711], firewalls: [{ firewall: 38 }], public_net: { enable_ipv4: false, enable_ipv6: true } });
    const server = obj(res.body.server);
    expect(obj(server.public_net).ipv4).toBeNull();
    expect(obj(obj(server.public_net).ipv6).ip).toMatch(/^2001:db8:.*::\/64$/);
    expect(obj(server.public_net).firewalls).toEqual([{ id: 38, status: 'applied' }]);
    expect(server.private_net).toEqual([expect.objectContaining({ network: 4711, ip: expect.stringMatching(/^10\./) })]);
  });

  it('refuses a second server with the same name with 409 uniqueness_error, also while the first is being deleted', async () => {
    const { api } = await setup();
    const first = await api.post('/servers', create);
    const again = await api.post('/servers', { ...create, server_type: 'cx22' });
    expect(again.status).toBe(409);
    expect(errorOf(again.body)).toEqual({ code: 'uniqueness_error', message: 'server name is already used', details: { fields: [{ name: 'name' }] } });
    await api.delete(`/servers/${obj(first.body.server).id as number}`);
    expect((await api.post('/servers', create)).status).toBe(409);
    expect(fake!.servers()).toHaveLength(1);
  });

  it('refuses missing fields and a name that is no RFC 1123 hostname of at most 63 characters with invalid_input naming each field', async () => {
    const { api } = await setup();
    const missing = await api.post('/servers', { image: 'ubuntu-24.04' });
    expect(missing.status).toBe(400);
    expect(errorOf(missing.body).code).toBe('invalid_input');
    expect(errorOf(missing.body).message).toBe("invalid input in fields 'name', 'server_type'");
    expect(errorOf(missing.body).details?.fields?.map((f) => f.name)).toEqual(['name', 'server_type']);

    for (const name of ['under_score', '-lead', 'trail-', 'a..b', 'x'.repeat(64), '', 'sp ace', 7]) {
      const res = await api.post('/servers', { ...create, name });
      expect(res.status, String(name)).toBe(400);
      expect(errorOf(res.body).details?.fields?.[0]?.name).toBe('name');
    }
    for (const name of ['web-1.example.com', 'x'.repeat(63), '1st']) {
      expect((await api.post('/servers', { ...create, name })).status, name).toBe(201);
    }
    expect(fake!.servers()).toHaveLength(3);
  });

  it('refuses labels breaking Hetzner’s rules, so the provider’s label encoder is really tested', async () => {
    const { api } = await setup();
    for (const labels of [{ 'drover group': 'x' }, { k: 'a/b' }, { k: 'x'.repeat(64) }, { 'hetzner.cloud/x': 'y' }, { k: 1 }, ['k']]) {
      const res = await api.post('/servers', { ...create, labels });
      expect(res.status, JSON.stringify(labels)).toBe(400);
      expect(errorOf(res.body)).toMatchObject({ code: 'invalid_input', details: { fields: [{ name: 'labels' }] } });
    }
    expect(fake!.servers()).toEqual([]);
  });

  it('refuses user_data over 32 KiB and accepts exactly 32 KiB, handing it to onCreate', async () => {
    const seen: string[] = [];
    const { api } = await setup({ onCreate: (s) => seen.push(s.userData) });
    const tooLong = await api.post('/servers', { ...create, user_data: 'x'.repeat(MAX_USER_DATA_BYTES + 1) });
    expect(tooLong.status).toBe(400);
    expect(errorOf(tooLong.body).details?.fields?.[0]?.name).toBe('user_data');
    const exact = await api.post('/servers', { ...create, user_data: 'y'.repeat(MAX_USER_DATA_BYTES) });
    expect(exact.status).toBe(201);
    expect(seen).toEqual(['y'.repeat(MAX_USER_DATA_BYTES)]);
  });

  it('answers invalid_input for an unknown server type, image or location, and for a type not offered in the location', async () => {
    const { api } = await setup();
    const cases: Array<[Obj, string, string]> = [
      [{ server_type: 'cx99' }, 'server_type', "server type 'cx99' not found"],
      [{ image: 'plan9' }, 'image', "image 'plan9' not found"],
      [{ location: 'mars1' }, 'location', "location 'mars1' not found"],
      [{ server_type: 'cax11', location: 'ash' }, 'location', 'unsupported location for server type'],
      [{ location: 'fsn1', datacenter: 'fsn1-dc14' }, 'datacenter', "invalid input in field 'datacenter': must not be used together with location"],
    ];
    for (const [patch, field, message] of cases) {
      const res = await api.post('/servers', { ...create, ...patch });
      expect(res.status, message).toBe(400);
      expect(errorOf(res.body).code).toBe('invalid_input');
      expect(errorOf(res.body).message).toBe(message);
      expect(errorOf(res.body).details?.fields?.[0]?.name).toBe(field);
    }
  });

  it('answers json_error for a body that is not JSON', async () => {
    const { api } = await setup();
    const res = await api.request('POST', '/servers', '{"name":');
    expect(res.status).toBe(400);
    expect(errorOf(res.body).code).toBe('json_error');
  });
});

describe('GET /servers/{id}', () => {
  it('answers the server, and 404 not_found for an unknown ID', async () => {
    const { api } = await setup();
    const id = obj((await api.post('/servers', create)).body.server).id as number;
    const res = await api.get(`/servers/${id}`);
    expect(res.status).toBe(200);
    expect(obj(res.body.server)).toMatchObject({ id, name: 'web-1' });
    const missing = await api.get('/servers/123');
    expect(missing.status).toBe(404);
    expect(errorOf(missing.body).code).toBe('not_found');
    expect((await api.get('/servers/abc')).status).toBe(400);
  });
});

describe('GET /servers', () => {
  async function seed(api: HcloudClient): Promise<void> {
    const specs: Array<[string, Record<string, string>]> = [
      ['web-1', { group: 'web', env: 'prod' }],
      ['web-2', { group: 'web', env: 'staging' }],
      ['db-1', { group: 'db', env: 'prod' }],
      ['tmp-1', {}],
    ];
    for (const [name, labels] of specs) expect((await api.post('/servers', { ...create, name, labels })).status).toBe(201);
  }
  const names = (body: Obj) => (body.servers as Obj[]).map((s) => s.name);

  it('lists every server by ID with meta.pagination (defaults page 1, per_page 25)', async () => {
    const { api } = await setup();
    await seed(api);
    const res = await api.get('/servers');
    expect(res.status).toBe(200);
    expect(names(res.body)).toEqual(['web-1', 'web-2', 'db-1', 'tmp-1']);
    expect(obj(res.body.meta).pagination).toEqual({ page: 1, per_page: 25, previous_page: null, next_page: null, last_page: 1, total_entries: 4 });
  });

  it('filters by exact name, by label selector and by status (repeatable)', async () => {
    const { api, clock } = await setup({ actionMs: 2000 });
    await seed(api);
    expect(names((await api.get('/servers?name=web-2')).body)).toEqual(['web-2']);
    expect(names((await api.get('/servers?name=web')).body)).toEqual([]);
    expect(names((await api.get(`/servers?label_selector=${encodeURIComponent('group=web,env!=staging')}`)).body)).toEqual(['web-1']);
    expect(names((await api.get(`/servers?label_selector=${encodeURIComponent('env in (prod,staging),group notin (db)')}`)).body)).toEqual(['web-1', 'web-2']);
    expect(names((await api.get(`/servers?label_selector=${encodeURIComponent('!group')}`)).body)).toEqual(['tmp-1']);
    expect(names((await api.get('/servers?status=running')).body)).toEqual([]);
    clock.advance(2000);
    fake!.setStatus(fake!.serverByName('db-1')!.id, 'off');
    expect(names((await api.get('/servers?status=running&status=off')).body)).toEqual(['web-1', 'web-2', 'db-1', 'tmp-1']);
    expect(names((await api.get('/servers?status=off')).body)).toEqual(['db-1']);
  });

  it('pages with page and per_page, naming previous, next and last pages in meta and the Link header', async () => {
    const { api, endpoint } = await setup();
    await seed(api);
    const p2 = await api.get('/servers?per_page=3&page=2');
    expect(names(p2.body)).toEqual(['tmp-1']);
    expect(obj(p2.body.meta).pagination).toEqual({ page: 2, per_page: 3, previous_page: 1, next_page: null, last_page: 2, total_entries: 4 });
    expect(p2.headers.get('link')).toBe(`<${endpoint}/servers?per_page=3&page=1>; rel="prev", <${endpoint}/servers?per_page=3&page=2>; rel="last"`);
    const p1 = await api.get('/servers?per_page=3');
    expect(obj(obj(p1.body.meta).pagination).next_page).toBe(2);
    const past = await api.get('/servers?per_page=3&page=9');
    expect(names(past.body)).toEqual([]);
  });

  it('refuses per_page above 50, a page below 1, an unknown status or sort, and a malformed label selector', async () => {
    const { api } = await setup();
    for (const [query, field] of [
      ['per_page=51', 'per_page'],
      ['per_page=0', 'per_page'],
      ['page=0', 'page'],
      ['status=sleeping', 'status'],
      ['sort=size', 'sort'],
      [`label_selector=${encodeURIComponent('env in prod')}`, 'label_selector'],
    ]) {
      const res = await api.get(`/servers?${query}`);
      expect(res.status, query).toBe(400);
      expect(errorOf(res.body).details?.fields?.[0]?.name, query).toBe(field);
    }
    expect((await api.get('/servers?per_page=50')).status).toBe(200);
  });

  it('sorts by name or created, ascending or descending', async () => {
    const { api } = await setup();
    await seed(api);
    expect(names((await api.get('/servers?sort=name')).body)).toEqual(['db-1', 'tmp-1', 'web-1', 'web-2']);
    expect(names((await api.get('/servers?sort=id:desc')).body)).toEqual(['tmp-1', 'db-1', 'web-2', 'web-1']);
  });
});

describe('PUT /servers/{id}', () => {
  it('renames and replaces the whole label set', async () => {
    const { api } = await setup();
    const id = obj((await api.post('/servers', { ...create, labels: { a: '1', b: '2' } })).body.server).id as number;
    const res = await api.put(`/servers/${id}`, { labels: { c: '3' } });
    expect(res.status).toBe(200);
    expect(obj(res.body.server).labels).toEqual({ c: '3' });
    const renamed = await api.put(`/servers/${id}`, { name: 'web-9' });
    expect(obj(renamed.body.server)).toMatchObject({ name: 'web-9', labels: { c: '3' } });
    expect(fake!.serverByName('web-9')?.id).toBe(id);
  });

  it('refuses bad labels, a bad or taken name, and an unknown server, changing nothing', async () => {
    const { api } = await setup();
    const id = obj((await api.post('/servers', { ...create, labels: { a: '1' } })).body.server).id as number;
    await api.post('/servers', { ...create, name: 'web-2' });
    expect((await api.put(`/servers/${id}`, { labels: { 'a b': '1' } })).status).toBe(400);
    expect((await api.put(`/servers/${id}`, { name: 'bad_name' })).status).toBe(400);
    const taken = await api.put(`/servers/${id}`, { name: 'web-2', labels: { z: '1' } });
    expect(taken.status).toBe(409);
    expect(errorOf(taken.body).code).toBe('uniqueness_error');
    expect(fake!.server(id)).toMatchObject({ name: 'web-1', labels: { a: '1' } });
    expect((await api.put('/servers/999', { name: 'x' })).status).toBe(404);
  });
});
