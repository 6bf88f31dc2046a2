/** The Hetzner provider against the fake Hetzner Cloud API: what it sends and what it makes of the answers. */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock/index.js';
import { PermanentError, ProviderError, isRetryable } from '../../../src/errors/index.js';
import { HcloudClient, HetznerProvider } from '../../../src/providers/hetzner/index.js';
import { agentConfigFromUserData } from '../../../src/providers/cloud-init/index.js';
import { TAG, USER_DATA, type ProviderCreateRequest, type RateLimitState } from '../../../src/providers/types.js';
import { DEFAULT_TOKEN, FakeHcloud, type FakeHcloudOptions } from '../../fakes/hetzner/index.js';

const TEMPLATE = { image: 'ubuntu-24.04', serverTypes: ['cx32', 'cpx31'], locations: ['fsn1', 'nbg1', 'hel1'] };
const fakes: FakeHcloud[] = [];
afterEach(async () => {
  for (const f of fakes.splice(0)) await f.close();
});

async function setup(options: FakeHcloudOptions = {}) {
  const clock = new ManualClock(new Date(Date.UTC(2026, 11, 6, 9)));
  const fake = new FakeHcloud({ now: () => clock.nowMs(), ...options });
  fakes.push(fake);
  const endpoint = await fake.start();
  const make = () => new HetznerProvider({ client: new HcloudClient({ endpoint, token: DEFAULT_TOKEN, timeoutMs: 10_000 }), clock, renderUserData: () => '#!/bin/sh\necho drover\n' });
  return { clock, fake, provider: make(), restarted: make };
}

function request(id: string, group = 'web', template: Record<string, unknown> = TEMPLATE): ProviderCreateRequest {
  return { idempotencyKey: id, template, tags: { [TAG.shard]: 'eu1', [TAG.tenant]: 'default', [TAG.group]: group, [TAG.instanceId]: id, [TAG.createdAt]: '2026-12-06T09:00:00.000Z' } };
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    if (err instanceof Error) return err;
  }
  throw new Error('expected a rejection');
}

describe('HetznerProvider.create', () => {
  it('names the server after the instance id, labels it with Drover\'s tags and passes the user data', async () => {
    const { fake, provider } = await setup();
    const created = await provider.create(request('i-00000000000000a1'));
    const server = fake.serverByName('i-00000000000000a1');
    expect(server?.id).toBe(Number(created.providerId));
    expect(server?.labels).toMatchObject({ 'drover/shard': 'eu1', 'drover/instance-id': 'i-00000000000000a1' });
    expect(created.tags[TAG.createdAt]).toBe('2026-12-06T09:00:00.000Z');
    expect(created.status).toBe('pending');
    expect(created.launchDetail).toBe('cx32 in fsn1');
  });

  it('renders the agent\'s cloud-init bootstrap for Hetzner: the one-time token, metadata hetzner, the template\'s commands', async () => {
    const clock = new ManualClock(new Date(Date.UTC(2026, 11, 6, 9)));
    let userData = '';
    const fake = new FakeHcloud({ now: () => clock.nowMs(), onCreate: (server) => (userData = server.userData) });
    fakes.push(fake);
    const provider = new HetznerProvider({ client: new HcloudClient({ endpoint: await fake.start(), token: DEFAULT_TOKEN, timeoutMs: 10_000 }), clock });
    expect(provider.agentBootstrap).toBe('token');
    const req = request('i-00000000000000a9', 'web', { ...TEMPLATE, command: ['/usr/local/bin/web'] });
    req.userData = { [USER_DATA.server]: 'https://drover.example:7400', [USER_DATA.instanceId]: 'i-00000000000000a9', [USER_DATA.bootstrapToken]: 'tok-one-time-abcdefghijklmnop' };
    await provider.create(req);
    expect(agentConfigFromUserData(userData)).toMatchObject({ instanceId: 'i-00000000000000a9', metadata: 'hetzner', bootstrapToken: 'tok-one-time-abcdefghijklmnop', command: ['/usr/local/bin/web'] });
  });

  it('finds the server an earlier attempt created (the name is taken), also from a restarted server, and creates no second', async () => {
    const { fake, provider, restarted } = await setup();
    const first = await provider.create(request('i-00000000000000a2'));
    const again = await restarted().create(request('i-00000000000000a2'));
    expect(again.providerId).toBe(first.providerId);
    expect(again.launchDetail).toMatch(/found by its name/);
    expect(fake.servers()).toHaveLength(1);
  });

  it('refuses, permanently, a name taken by a server Drover did not create', async () => {
    const { provider } = await setup();
    const other = request('i-00000000000000a3');
    other.tags[TAG.instanceId] = 'someone-else';
    await provider.create(other);
    const err = await rejection(provider.create(request('i-00000000000000a3')));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toMatch(/Drover did not create/);
  });

  it('moves to the next server type, then the next location, when one is unavailable, and says what it tried', async () => {
    const { fake, provider } = await setup();
    fake.setUnavailable({ serverType: 'cx32' });
    const created = await provider.create(request('i-00000000000000a4'));
    expect(fake.server(Number(created.providerId))?.serverType).toBe('cpx31');
    expect(created.launchDetail).toBe('cpx31 in fsn1; tried first: cx32 in fsn1: resource_unavailable');
    fake.setUnavailable({ location: 'nbg1', code: 'placement_error' });
    const next = await provider.create(request('i-00000000000000a6'));
    expect(next.launchDetail).toBe('cpx31 in hel1; tried first: cx32 in nbg1: resource_unavailable; cpx31 in nbg1: placement_error; cx32 in hel1: resource_unavailable');
  });

  it('fails retryably, having created nothing, when nothing is available', async () => {
    const { fake, provider } = await setup();
    fake.setUnavailable({ serverType: 'cx32' });
    fake.setUnavailable({ serverType: 'cpx31' });
    const err = await rejection(provider.create(request('i-00000000000000a5')));
    expect(err).toBeInstanceOf(ProviderError);
    expect(isRetryable(err)).toBe(true);
    expect(fake.servers()).toHaveLength(0);
  });

  it('keeps a group balanced over its locations, also for replacements', async () => {
    const { provider } = await setup();
    const where = async (id: string, group = 'web') => (await provider.create(request(id, group))).launchDetail?.split(' in ')[1];
    const placed = [await where('i-0000000000000b01'), await where('i-0000000000000b02'), await where('i-0000000000000b03'), await where('i-0000000000000b04')];
    expect(placed).toEqual(['fsn1', 'nbg1', 'hel1', 'fsn1']);
    // Another group starts from the first location; a group that lost its nbg1 server refills nbg1.
    expect(await where('i-0000000000000c01', 'api')).toBe('fsn1');
    const [lost] = (await provider.list({ [TAG.instanceId]: 'i-0000000000000b02' })).map((i) => i.providerId);
    await provider.delete(lost!);
    expect(await where('i-0000000000000b05')).toBe('nbg1');
  });

  it('refills the location of a server Hetzner lost (seen by status or by a shard-wide list)', async () => {
    const { fake, provider } = await setup({ deleteMs: 0 });
    const ids = ['i-0000000000000f01', 'i-0000000000000f02', 'i-0000000000000f03'];
    const created = [];
    for (const id of ids) created.push(await provider.create(request(id)));
    fake.deleteExternally(Number(created[1]!.providerId));
    await rejection(provider.status(created[1]!.providerId));
    expect((await provider.create(request('i-0000000000000f04'))).launchDetail).toBe('cx32 in nbg1');
    fake.deleteExternally(Number(created[2]!.providerId));
    await provider.list({ [TAG.shard]: 'eu1' });
    expect((await provider.create(request('i-0000000000000f05'))).launchDetail).toBe('cx32 in hel1');
  });

  it('attaches networks and firewalls given by name (looked up once) or by id, and refuses a name the project lacks', async () => {
    const { fake, provider } = await setup();
    const net = fake.addNetwork('private-net');
    const fw = fake.addFirewall('web');
    const template = { ...TEMPLATE, networks: ['private-net', 4711], firewalls: ['web'] };
    const a = await provider.create(request('i-0000000000000g01', 'web', template));
    await provider.create(request('i-0000000000000g02', 'web', template));
    expect(fake.server(Number(a.providerId))?.networks).toEqual([net, 4711]);
    expect(fake.server(Number(a.providerId))?.firewalls).toEqual([fw]);
    expect(fake.count('list_networks')).toBe(1);
    expect(fake.count('list_firewalls')).toBe(1);
    const err = await rejection(provider.create(request('i-0000000000000g03', 'web', { ...TEMPLATE, networks: ['no-such-net'] })));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toMatch(/no network named "no-such-net"/);
  });

  it('spreads creates made at once, before any has answered', async () => {
    const { fake, provider } = await setup({ responseDelayMs: 20 });
    const created = await Promise.all(['i-0000000000000e01', 'i-0000000000000e02', 'i-0000000000000e03'].map((id) => provider.create(request(id))));
    expect(created.map((c) => fake.server(Number(c.providerId))?.location).sort()).toEqual(['fsn1', 'hel1', 'nbg1']);
  });
});

describe('HetznerProvider status, list, labels and the rate limit', () => {
  it('follows the create action: pending until it succeeds, then the server\'s own status; a deleting server leaves the list', async () => {
    const { clock, fake, provider } = await setup({ actionMs: 3_000, deleteMs: 5_000 });
    const { providerId } = await provider.create(request('i-00000000000000d1'));
    expect(await provider.status(providerId)).toBe('pending');
    await clock.advance(3_000);
    expect(await provider.status(providerId)).toBe('running');
    fake.setStatus(Number(providerId), 'off');
    expect(await provider.status(providerId)).toBe('stopped');
    await provider.delete(providerId);
    expect(await provider.list({ [TAG.shard]: 'eu1' })).toEqual([]);
    expect(await provider.status(providerId)).toBe('deleting');
  });

  it('merges label writes with the server\'s labels (Hetzner replaces the whole set)', async () => {
    const { fake, provider } = await setup();
    const { providerId } = await provider.create(request('i-00000000000000d2'));
    await Promise.all([provider.setTags(providerId, { [TAG.drainReason]: 'scaleDown' }), provider.setTags(providerId, { [TAG.drainDeadline]: '2026-12-06T09:05:00.000Z' })]);
    const labels = fake.server(Number(providerId))?.labels ?? {};
    expect(labels['drover/drain-reason']).toBe('scaleDown');
    expect(labels['drover/drain-deadline']).toMatch(/^b32-/);
    expect(labels['drover/instance-id']).toBe('i-00000000000000d2');
  });

  it('hands every answer\'s rate-limit figures to whoever watches them (the call gate)', async () => {
    const { fake, provider } = await setup();
    fake.setRateLimit({ limit: 3600, refillPerSecond: 1 });
    const seen: RateLimitState[] = [];
    provider.watchRateLimit((s) => seen.push(s));
    await provider.create(request('i-00000000000000d3'));
    await provider.list({ [TAG.shard]: 'eu1' });
    expect(seen).toHaveLength(2);
    expect(seen[1]).toMatchObject({ limit: 3600, remaining: 3598 });
    expect(seen[1]!.resetAtMs).toBeGreaterThan(Date.UTC(2026, 11, 6, 9));
  });
});
