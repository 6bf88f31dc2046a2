/**
 * The fake Hetzner Cloud API's failure controls over real HTTP: authentication, the project's
 * rate limit and its headers on the injected clock, capacity (resource_unavailable /
 * placement_error), injected faults, latency that blocks no one, and the call log.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FakeHcloud, type FakeHcloudOptions, hcloud, type HcloudClient, ManualClock } from './index.js';

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

type Obj = Record<string, unknown>;
const create = { name: 'web-1', server_type: 'cpx11', image: 'ubuntu-24.04' };
const errorOf = (body: Obj) => body.error as { code: string; message: string; details: unknown };
const nowSeconds = (clock: ManualClock) => Math.floor(clock.now() / 1000);

describe('authentication', () => {
  it('answers 401 unauthorized to a missing, malformed or wrong token, and serves the right one', async () => {
    const { api, endpoint } = await setup({ token: ['t-one', 't-two'] });
    for (const tok of [null, 'nope', '']) {
      const res = await api.request('GET', '/servers', undefined, tok);
      expect(res.status, String(tok)).toBe(401);
      expect(res.body).toEqual({ error: { code: 'unauthorized', message: 'unable to authenticate', details: null } });
    }
    const basic = await fetch(`${endpoint}/servers`, { headers: { authorization: 'Basic dC1vbmU6' } });
    expect(basic.status).toBe(401);
    expect((await api.request('GET', '/servers', undefined, 't-two')).status).toBe(200);
    expect((await api.request('POST', '/servers', create, 'nope')).status).toBe(401);
    expect(fake!.servers()).toEqual([]);
    expect(fake!.count('list_servers', { code: 'unauthorized' })).toBe(4);
  });

  it('answers 404 not_found for a path it does not serve, once authenticated', async () => {
    const { api, endpoint } = await setup();
    const res = await api.get('/volumes');
    expect(res.status).toBe(404);
    expect(errorOf(res.body).code).toBe('not_found');
    expect((await fetch(`${endpoint.replace(/\/v1$/, '')}/servers`, { headers: { authorization: 'Bearer hcloud-fake-token' } })).status).toBe(404);
    expect(fake!.calls.at(-1)).toMatchObject({ path: '/servers', status: 404 });
    expect(fake!.calls.at(-1)?.route).toBeUndefined();
  });
});

describe('rate limit', () => {
  it('sends no RateLimit headers while no limit is set (the default)', async () => {
    const { api } = await setup();
    const res = await api.get('/servers');
    expect(res.headers.get('ratelimit-limit')).toBeNull();
  });

  it('carries RateLimit-Limit, -Remaining and -Reset (unix seconds when the bucket is full again) on every answer', async () => {
    const { api, clock } = await setup({ rateLimit: { limit: 3600, refillPerSecond: 1 } });
    const first = await api.get('/servers');
    expect(first.headers.get('ratelimit-limit')).toBe('3600');
    expect(first.headers.get('ratelimit-remaining')).toBe('3599');
    expect(first.headers.get('ratelimit-reset')).toBe(String(nowSeconds(clock) + 1));
    await api.get('/servers/1');
    const third = await api.post('/servers', { name: 'bad name' });
    expect(third.status).toBe(400);
    expect(third.headers.get('ratelimit-remaining')).toBe('3597');
    expect(third.headers.get('ratelimit-reset')).toBe(String(nowSeconds(clock) + 3));
    clock.advance(2000);
    expect((await api.get('/servers')).headers.get('ratelimit-remaining')).toBe('3598');
  });

  it('answers 429 rate_limit_exceeded once the bucket is empty, takes nothing for refused requests, and serves again as it refills', async () => {
    const { api, clock } = await setup();
    fake!.setRateLimit({ limit: 3, refillPerSecond: 1 });
    for (let i = 0; i < 3; i++) expect((await api.get('/servers')).status).toBe(200);
    const refused = await api.post('/servers', create);
    expect(refused.status).toBe(429);
    expect(errorOf(refused.body).code).toBe('rate_limit_exceeded');
    expect(refused.headers.get('ratelimit-remaining')).toBe('0');
    expect(refused.headers.get('ratelimit-reset')).toBe(String(nowSeconds(clock) + 3));
    expect(fake!.servers()).toEqual([]);
    for (let i = 0; i < 5; i++) expect((await api.get('/servers')).status).toBe(429);

    clock.advance(999);
    expect((await api.get('/servers')).status).toBe(429);
    clock.advance(1);
    expect((await api.get('/servers')).status).toBe(200);
    expect((await api.get('/servers')).status).toBe(429);
    expect(fake!.count('list_servers', { status: 429 })).toBe(7);
    expect(fake!.count('create_server', { code: 'rate_limit_exceeded' })).toBe(1);

    fake!.setRateLimit(null);
    const free = await api.get('/servers');
    expect(free.status).toBe(200);
    expect(free.headers.get('ratelimit-limit')).toBeNull();
  });

  it('does not charge a request refused as unauthorized to the project', async () => {
    const { api } = await setup({ rateLimit: { limit: 2, refillPerSecond: 1 } });
    const denied = await api.request('GET', '/servers', undefined, 'wrong');
    expect(denied.status).toBe(401);
    expect(denied.headers.get('ratelimit-remaining')).toBe('2');
    expect((await api.get('/servers')).headers.get('ratelimit-remaining')).toBe('1');
  });

  it('refuses a limit that never refills', async () => {
    const { fake } = await setup();
    expect(() => fake.setRateLimit({ limit: 10, refillPerSecond: 0 })).toThrow(RangeError);
    expect(() => fake.setRateLimit({ limit: 0, refillPerSecond: 1 })).toThrow(RangeError);
  });
});

describe('capacity', () => {
  it('answers 412 resource_unavailable "error during placement" for a server type out of stock in a location, and nothing is created', async () => {
    const { api } = await setup();
    fake!.setUnavailable({ serverType: 'cx22', location: 'fsn1' });
    const res = await api.post('/servers', { ...create, server_type: 'cx22', location: 'fsn1' });
    expect(res.status).toBe(412);
    expect(res.body).toEqual({ error: { code: 'resource_unavailable', message: 'error during placement', details: null } });
    expect(fake!.servers()).toEqual([]);
    expect((await api.post('/servers', { ...create, server_type: 'cx22', location: 'nbg1' })).status).toBe(201);
    expect((await api.post('/servers', { ...create, name: 'web-2', server_type: 'cx32', location: 'fsn1' })).status).toBe(201);
  });

  it('places a server without a location elsewhere when the default location is out of that type, and fails when every location is', async () => {
    const { api } = await setup({ defaultLocation: 'fsn1' });
    fake!.setUnavailable({ location: 'fsn1' });
    const placed = await api.post('/servers', { ...create, server_type: 'cx22' });
    expect(placed.status).toBe(201);
    expect(fake!.serverByName('web-1')?.location).toBe('nbg1');
    fake!.setUnavailable({ serverType: 'cx22' });
    expect((await api.post('/servers', { ...create, name: 'web-2', server_type: 'cx22' })).status).toBe(412);
    expect((await api.post('/servers', { ...create, name: 'web-2', server_type: 'cpx11' })).status).toBe(201);
  });

  it('answers 422 placement_error when told to, and serves again after setAvailable or clearUnavailable', async () => {
    const { api } = await setup();
    fake!.setUnavailable({ serverType: 'cpx11', location: 'hel1', code: 'placement_error' });
    const res = await api.post('/servers', { ...create, location: 'hel1' });
    expect(res.status).toBe(422);
    expect(errorOf(res.body).code).toBe('placement_error');
    fake!.setAvailable({ serverType: 'cpx11', location: 'hel1' });
    expect((await api.post('/servers', { ...create, location: 'hel1' })).status).toBe(201);
    fake!.setUnavailable({});
    expect((await api.post('/servers', { ...create, name: 'web-2' })).status).toBe(412);
    fake!.clearUnavailable();
    expect((await api.post('/servers', { ...create, name: 'web-2' })).status).toBe(201);
  });
});

describe('failNext', () => {
  it('fails the next calls of a route with the given status and code, queued in order, changing nothing', async () => {
    const { api } = await setup();
    fake!.failNext('POST', 'create_server', { code: 'server_error', count: 2 });
    fake!.failNext('POST', 'create_server', { code: 'timeout', status: 504, message: 'gateway timed out' });
    const a = await api.post('/servers', create);
    expect(a.status).toBe(500);
    expect(a.body).toEqual({ error: { code: 'server_error', message: 'internal server error', details: null } });
    expect((await api.post('/servers', create)).status).toBe(500);
    const c = await api.post('/servers', create);
    expect(c.status).toBe(504);
    expect(errorOf(c.body).message).toBe('gateway timed out');
    expect(fake!.servers()).toEqual([]);
    expect((await api.post('/servers', create)).status).toBe(201);
    expect(fake!.count('create_server', { code: true })).toBe(3);
    expect(fake!.count('create_server', { code: false })).toBe(1);
  });

  it('matches a path pattern or a RegExp, and the method (or any with *)', async () => {
    const { api } = await setup();
    const id = ((await api.post('/servers', create)).body.server as Obj).id as number;
    fake!.failNext('DELETE', '/servers/{id}', { code: 'locked', message: 'server is locked' });
    fake!.failNext('*', /^\/actions\//, { code: 'service_error' });
    expect((await api.get(`/servers/${id}`)).status).toBe(200);
    const locked = await api.delete(`/servers/${id}`);
    expect(locked.status).toBe(423);
    expect(errorOf(locked.body).code).toBe('locked');
    expect(fake!.server(id)?.status).not.toBe('deleting');
    expect((await api.get('/actions/1')).status).toBe(422);
    expect((await api.delete(`/servers/${id}`)).status).toBe(200);
  });

  it('answers an injected fault before the rate limit, taking no token', async () => {
    const { api } = await setup({ rateLimit: { limit: 1, refillPerSecond: 1 } });
    fake!.failNext('GET', '/servers', { code: 'server_error' });
    expect((await api.get('/servers')).status).toBe(500);
    expect((await api.get('/servers')).status).toBe(200);
  });

  it('refuses a target that is neither a route name, a path nor a RegExp, and a bad count', async () => {
    const { fake } = await setup();
    expect(() => fake.failNext('GET', 'servers', { code: 'server_error' })).toThrow(RangeError);
    expect(() => fake.failNext('GET', 'get_server', { code: 'server_error', count: 0 })).toThrow(RangeError);
  });
});

describe('latency and recording', () => {
  it('delays answers by responseDelayMs without holding up other requests, acting on the request at arrival', async () => {
    const { api, endpoint } = await setup({ responseDelayMs: (c) => (c.route === 'create_server' ? 600_000 : 0) });
    const abort = new AbortController();
    const slow = fetch(`${endpoint}/servers`, {
      method: 'POST',
      headers: { authorization: 'Bearer hcloud-fake-token', 'content-type': 'application/json' },
      body: JSON.stringify(create),
      signal: abort.signal,
    });
    const settled = slow.then(
      () => 'answered',
      () => 'aborted',
    );
    // The server is created on arrival; only the answer waits. Meanwhile other calls are answered.
    let seen: unknown[] = [];
    while (seen.length === 0) seen = ((await api.get('/servers')).body.servers as Obj[]).map((s) => s.name);
    expect(seen).toEqual(['web-1']);
    abort.abort();
    expect(await settled).toBe('aborted');
    expect(fake!.calls.map((c) => c.route).filter((r) => r === 'create_server')).toHaveLength(1);
  });

  it('records method, path, query, route, clock time, status and error code of every call', async () => {
    const { api, clock } = await setup();
    await api.post('/servers', create);
    clock.advance(5000);
    await api.get('/servers?label_selector=a%3Db&per_page=5');
    await api.get('/servers/7');
    expect(fake!.calls).toEqual([
      { method: 'POST', path: '/servers', query: '', route: 'create_server', at: Date.UTC(2026, 0, 5, 9), status: 201 },
      { method: 'GET', path: '/servers', query: 'label_selector=a%3Db&per_page=5', route: 'list_servers', at: Date.UTC(2026, 0, 5, 9, 0, 5), status: 200 },
      { method: 'GET', path: '/servers/7', query: '', route: 'get_server', at: Date.UTC(2026, 0, 5, 9, 0, 5), status: 404, code: 'not_found' },
    ]);
    expect(fake!.count('get_server', { status: 404 })).toBe(1);
    expect(fake!.count('create_server')).toBe(1);
  });
});
