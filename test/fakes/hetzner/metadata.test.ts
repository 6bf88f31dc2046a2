/**
 * The fake Hetzner metadata service over real HTTP: one loopback server standing in for
 * http://169.254.169.254 for many servers, its items, and wiring it to the fake API's hooks.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FakeHcloud, FakeHetznerMetadata, hcloud, ManualClock } from './index.js';

let metadata: FakeHetznerMetadata | undefined;
let api: FakeHcloud | undefined;
afterEach(async () => {
  await metadata?.close();
  await api?.close();
  metadata = undefined;
  api = undefined;
});

async function setup(): Promise<{ metadata: FakeHetznerMetadata; clock: ManualClock }> {
  const clock = new ManualClock();
  metadata = new FakeHetznerMetadata({ now: clock.now });
  await metadata.start();
  return { metadata, clock };
}

async function text(url: string): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
}

describe('FakeHetznerMetadata', () => {
  it('gives each server its own base URL under the fake’s loopback address', async () => {
    const { metadata } = await setup();
    expect(metadata.endpointFor(42)).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/42$/);
  });

  it('answers hostname, instance-id, public-ipv4, availability-zone and region as text, the zone and region derived from the location', async () => {
    const { metadata } = await setup();
    metadata.addServer(42, { hostname: 'web-1', location: 'hel1', publicIpv4: '198.18.0.7' });
    const base = `${metadata.endpointFor(42)}/hetzner/v1/metadata`;
    const hostname = await text(`${base}/hostname`);
    expect(hostname).toEqual({ status: 200, body: 'web-1', type: 'text/plain; charset=utf-8' });
    expect((await text(`${base}/instance-id`)).body).toBe('42');
    expect((await text(`${base}/public-ipv4`)).body).toBe('198.18.0.7');
    expect((await text(`${base}/availability-zone`)).body).toBe('hel1-dc2');
    expect((await text(`${base}/region`)).body).toBe('eu-central');
  });

  it('answers the summary as YAML, private networks as a YAML list, and the user data', async () => {
    const { metadata } = await setup();
    metadata.addServer(7, {
      hostname: 'db-1',
      location: 'ash',
      publicIpv4: '198.18.0.9',
      privateNetworks: [{ ip: '10.0.0.2', networkId: 1234, networkName: 'nw-test1' }],
      userData: '#cloud-config\nruncmd: [drover-agent]\n',
    });
    const base = metadata.endpointFor(7);
    expect((await text(`${base}/hetzner/v1/metadata`)).body).toBe(
      'availability-zone: ash-dc1\nhostname: db-1\ninstance-id: 7\npublic-ipv4: 198.18.0.9\nregion: us-east\n',
    );
    const nets = (await text(`${base}/hetzner/v1/metadata/private-networks`)).body;
    expect(nets).toContain('- ip: 10.0.0.2\n');
    expect(nets).toContain('  network_id: 1234\n');
    expect(nets).toContain('  network_name: nw-test1\n');
    expect((await text(`${base}/hetzner/v1/userdata`)).body).toBe('#cloud-config\nruncmd: [drover-agent]\n');
  });

  it('answers 404 for an unknown item, a missing public IPv4, an unknown server and a removed one', async () => {
    const { metadata } = await setup();
    metadata.addServer(1, { hostname: 'a', location: 'fsn1' });
    const base = metadata.endpointFor(1);
    expect((await text(`${base}/hetzner/v1/metadata/nope`)).status).toBe(404);
    expect((await text(`${base}/hetzner/v1/metadata/public-ipv4`)).status).toBe(404);
    expect((await text(`${base}/latest/meta-data/instance-id`)).status).toBe(404);
    expect((await text(`${metadata.endpointFor(2)}/hetzner/v1/metadata/hostname`)).status).toBe(404);
    expect((await text(`${base}/hetzner/v1/metadata/private-networks`)).body).toBe('[]\n');
    metadata.removeServer(1);
    expect((await text(`${base}/hetzner/v1/metadata/hostname`)).status).toBe(404);
    expect(metadata.requests.map((r) => [r.serverId, r.path, r.status])).toEqual([
      ['1', '/hetzner/v1/metadata/nope', 404],
      ['1', '/hetzner/v1/metadata/public-ipv4', 404],
      ['1', '/latest/meta-data/instance-id', 404],
      ['2', '/hetzner/v1/metadata/hostname', 404],
      ['1', '/hetzner/v1/metadata/private-networks', 200],
      ['1', '/hetzner/v1/metadata/hostname', 404],
    ]);
  });

  it('refuses an unknown location unless the zone and region are given', async () => {
    const { metadata } = await setup();
    expect(() => metadata.addServer(1, { hostname: 'a', location: 'mars1' })).toThrow(/unknown location 'mars1'/);
    metadata.addServer(1, { hostname: 'a', location: 'mars1', availabilityZone: 'mars1-dc1', region: 'mars-north' });
    expect((await text(`${metadata.endpointFor(1)}/hetzner/v1/metadata/region`)).body).toBe('mars-north');
  });

  it('serves each server the fake API creates, wired through onCreate and onDelete', async () => {
    const { metadata, clock } = await setup();
    const md = metadata;
    api = new FakeHcloud({
      now: clock.now,
      deleteMs: 0,
      onCreate: (s) => md.addServer(s.id, { hostname: s.name, location: s.location, publicIpv4: s.publicIpv4, userData: s.userData }),
      onDelete: (s) => md.removeServer(s.id),
    });
    const client = hcloud(await api.start());
    const created = await client.post('/servers', { name: 'web-7', server_type: 'cpx21', image: 'debian-12', location: 'nbg1', user_data: 'token=abc' });
    const id = (created.body.server as Record<string, unknown>).id as number;
    const base = `${md.endpointFor(id)}/hetzner/v1`;
    expect((await text(`${base}/metadata/instance-id`)).body).toBe(String(id));
    expect((await text(`${base}/metadata/hostname`)).body).toBe('web-7');
    expect((await text(`${base}/metadata/availability-zone`)).body).toBe('nbg1-dc3');
    expect((await text(`${base}/metadata/public-ipv4`)).body).toBe(api.server(id)!.publicIpv4);
    expect((await text(`${base}/userdata`)).body).toBe('token=abc');
    await client.delete(`/servers/${id}`);
    expect((await text(`${base}/metadata/hostname`)).status).toBe(404);
  });
});
