/**
 * The fake IMDSv2 over real HTTP: the token flow, what a GET without a good token gets, and the
 * spot interruption and rebalance items.
 */
import { RunInstancesCommand } from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeEc2, FakeImds } from './index.js';
import { ec2Client, ManualClock } from './sdk.js';

const ID = 'i-0123456789abcdef0';

let imds: FakeImds | undefined;
let ec2Fake: FakeEc2 | undefined;
afterEach(async () => {
  await imds?.close();
  await ec2Fake?.close();
  imds = undefined;
  ec2Fake = undefined;
});

async function setup(): Promise<{ imds: FakeImds; clock: ManualClock; base: string }> {
  const clock = new ManualClock();
  imds = new FakeImds({ now: clock.now });
  await imds.start();
  imds.addInstance(ID, { az: 'eu-central-1c', lifecycle: 'spot' });
  return { imds, clock, base: imds.endpointFor(ID) };
}

async function token(base: string, ttl = '21600', headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}/latest/api/token`, { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': ttl, ...headers } });
}

async function get(base: string, path: string, tok?: string): Promise<Response> {
  return fetch(`${base}${path}`, { headers: tok === undefined ? {} : { 'X-aws-ec2-metadata-token': tok } });
}

describe('FakeImds', () => {
  it('serves one base URL per instance, under the fake’s own address', async () => {
    const { imds } = await setup();
    expect(imds.endpointFor(ID)).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:\\d+/${ID}$`));
  });

  it('issues a token on PUT /latest/api/token and answers metadata to GETs carrying it', async () => {
    const { base, imds } = await setup();
    const res = await token(base, '60');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-aws-ec2-metadata-token-ttl-seconds')).toBe('60');
    const tok = await res.text();
    expect(tok.length).toBeGreaterThan(20);

    const id = await get(base, '/latest/meta-data/instance-id', tok);
    expect(id.status).toBe(200);
    expect(id.headers.get('content-type')).toBe('text/plain');
    expect(await id.text()).toBe(ID);
    expect(await (await get(base, '/latest/meta-data/placement/availability-zone', tok)).text()).toBe('eu-central-1c');
    expect(await (await get(base, '/latest/meta-data/instance-life-cycle', tok)).text()).toBe('spot');
    expect(imds.requests.map((r) => [r.method, r.path, r.status, r.tokenOk])).toEqual([
      ['PUT', '/latest/api/token', 200, undefined],
      ['GET', '/latest/meta-data/instance-id', 200, true],
      ['GET', '/latest/meta-data/placement/availability-zone', 200, true],
      ['GET', '/latest/meta-data/instance-life-cycle', 200, true],
    ]);
  });

  it('answers 401 to a GET without a token, with an unknown one, with another instance’s, or with an expired one', async () => {
    const { base, clock, imds } = await setup();
    imds.addInstance('i-0fedcba9876543210');
    const other = await (await token(imds.endpointFor('i-0fedcba9876543210'))).text();
    const tok = await (await token(base, '10')).text();

    expect((await get(base, '/latest/meta-data/instance-id')).status).toBe(401);
    expect((await get(base, '/latest/meta-data/instance-id', 'forged')).status).toBe(401);
    expect((await get(base, '/latest/meta-data/instance-id', other)).status).toBe(401);
    clock.advance(9_999);
    expect((await get(base, '/latest/meta-data/instance-id', tok)).status).toBe(200);
    clock.advance(1);
    expect((await get(base, '/latest/meta-data/instance-id', tok)).status).toBe(401);
    expect(imds.requests.filter((r) => r.method === 'GET').map((r) => r.tokenOk)).toEqual([false, false, false, true, false]);
  });

  it('refuses a token PUT with X-Forwarded-For (403) or a TTL outside 1..21600 (400)', async () => {
    const { base } = await setup();
    expect((await token(base, '60', { 'X-Forwarded-For': '203.0.113.9' })).status).toBe(403);
    for (const ttl of ['0', '21601', 'soon', '-5']) expect((await token(base, ttl)).status).toBe(400);
    expect((await fetch(`${base}/latest/api/token`, { method: 'PUT' })).status).toBe(400);
    expect((await token(base, '1')).status).toBe(200);
    expect((await token(base, '21600')).status).toBe(200);
  });

  it('answers 404 for spot/instance-action until an action is set, then the JSON AWS documents, and 404 again once cleared', async () => {
    const { base, imds } = await setup();
    const tok = await (await token(base)).text();
    const path = '/latest/meta-data/spot/instance-action';
    expect((await get(base, path, tok)).status).toBe(404);

    imds.setSpotAction(ID, { action: 'terminate', time: '2026-12-06T10:00:00Z' });
    const res = await get(base, path, tok);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ action: 'terminate', time: '2026-12-06T10:00:00Z' });

    imds.setSpotAction(ID, { action: 'stop', time: Date.UTC(2026, 11, 6, 10, 2, 0, 500) });
    expect(await (await get(base, path, tok)).json()).toEqual({ action: 'stop', time: '2026-12-06T10:02:00Z' });

    imds.clear(ID);
    expect((await get(base, path, tok)).status).toBe(404);
  });

  it('answers 404 for the rebalance recommendation until one is set, then {"noticeTime": …}', async () => {
    const { base, imds } = await setup();
    const tok = await (await token(base)).text();
    const path = '/latest/meta-data/events/recommendations/rebalance';
    expect((await get(base, path, tok)).status).toBe(404);
    imds.setRebalance(ID, new Date(Date.UTC(2026, 11, 6, 9, 58, 0)));
    expect(await (await get(base, path, tok)).json()).toEqual({ noticeTime: '2026-12-06T09:58:00Z' });
  });

  it('answers 404 for an instance it does not serve, or once the instance is removed, and for unknown items', async () => {
    const { base, imds } = await setup();
    const tok = await (await token(base)).text();
    expect((await get(base, '/latest/meta-data/no-such-item', tok)).status).toBe(404);
    expect((await token(imds.endpointFor('i-00000000000000000'))).status).toBe(404);
    imds.removeInstance(ID);
    expect((await get(base, '/latest/meta-data/instance-id', tok)).status).toBe(404);
  });

  it('answers 405 to a GET of the token path and 403 to a PUT anywhere else', async () => {
    const { base } = await setup();
    const tok = await (await token(base)).text();
    expect((await get(base, '/latest/api/token', tok)).status).toBe(405);
    expect((await fetch(`${base}/2021-03-23/api/token`, { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' } })).status).toBe(403);
  });

  it('serves every instance the fake EC2 launches when wired through onLaunch and onTerminate, spot notices included', async () => {
    const clock = new ManualClock();
    imds = new FakeImds({ now: clock.now });
    await imds.start();
    const metadata = imds;
    ec2Fake = new FakeEc2({
      now: clock.now,
      onLaunch: (i) => metadata.addInstance(i.instanceId, { az: i.availabilityZone, instanceType: i.instanceType, lifecycle: i.market }),
      onTerminate: (i) => metadata.removeInstance(i.instanceId),
    });
    const ec2 = ec2Client(await ec2Fake.start(), { maxAttempts: 1 });
    const run = await ec2.send(
      new RunInstancesCommand({ ImageId: 'ami-0abcdef1234567890', InstanceType: 'c6g.large', MinCount: 1, MaxCount: 1, InstanceMarketOptions: { MarketType: 'spot' } }),
    );
    const id = run.Instances![0]!.InstanceId!;
    const base = imds.endpointFor(id);
    const tok = await (await token(base)).text();
    expect(await (await get(base, '/latest/meta-data/instance-id', tok)).text()).toBe(id);
    expect(await (await get(base, '/latest/meta-data/instance-type', tok)).text()).toBe('c6g.large');

    // A spot interruption: the notice two minutes ahead, then the cloud takes the instance.
    imds.setSpotAction(id, { action: 'terminate', time: clock.now() + 120_000 });
    expect(await (await get(base, '/latest/meta-data/spot/instance-action', tok)).json()).toEqual({ action: 'terminate', time: '2026-01-05T09:02:00Z' });
    clock.advance(120_000);
    ec2Fake.terminateExternally(id);
    expect((await get(base, '/latest/meta-data/instance-id', tok)).status).toBe(404);
  });
});
