/**
 * The EC2 provider against the fake EC2 Query API (test/fakes/ec2) through the real SDK client
 * Drover builds (createEc2Client): what it sends, what it makes of EC2's answers and errors.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock/clock.js';
import type { TemplateSpec } from '../../../src/config/index.js';
import { InstanceNotFoundError, PermanentError, ProviderError, isRetryable, isThrottled } from '../../../src/errors/index.js';
import { AwsProvider, createEc2Client, launchOptions } from '../../../src/providers/aws/index.js';
import { agentConfigFromUserData } from '../../../src/providers/cloud-init/index.js';
import { TAG, USER_DATA, type ProviderCreateRequest } from '../../../src/providers/types.js';
import { awsTemplateSchema } from '../../../src/config/index.js';
import { FakeEc2, type FakeEc2Options } from '../../fakes/ec2/index.js';

const AMI = 'ami-0abcdef1234567890';
const SUBNETS = ['subnet-0aaa1111bbbb2222c', 'subnet-0bbb1111bbbb2222c'];
const TEMPLATE: TemplateSpec = { imageId: AMI, instanceTypes: ['m7i.large', 'm6i.large'], subnetIds: SUBNETS, securityGroupIds: ['sg-0123456789abcdef0'], iamInstanceProfile: 'drover-agent' };

const savedEnv = { ...process.env };
beforeAll(() => {
  // The SDK's default credential chain reads these (a real server reads its role's).
  process.env.AWS_ACCESS_KEY_ID = 'AKIDFAKEFAKEFAKEFAKE';
  process.env.AWS_SECRET_ACCESS_KEY = 'fake-secret-fake-secret';
  delete process.env.AWS_PROFILE;
});
afterAll(() => {
  process.env = savedEnv;
});

const opened: Array<{ fake: FakeEc2; provider: AwsProvider }> = [];
afterEach(async () => {
  for (const { fake, provider } of opened.splice(0)) {
    provider.close();
    await fake.close();
  }
});

async function setup(options: FakeEc2Options = {}, providerOptions: { graceMs?: number; pageSize?: number; userData?: (req: ProviderCreateRequest) => string } = {}) {
  const clock = new ManualClock(new Date(Date.UTC(2026, 11, 6, 9)));
  const fake = new FakeEc2({ now: () => clock.nowMs(), ...options });
  const endpoint = await fake.start();
  const make = () =>
    new AwsProvider({
      client: createEc2Client({ region: 'eu-central-1', endpoint, maxAttempts: 3, requestTimeoutMs: 10_000 }),
      clock,
      notFoundGraceMs: providerOptions.graceMs ?? 60_000,
      ...(providerOptions.pageSize ? { pageSize: providerOptions.pageSize } : {}),
      ...(providerOptions.userData ? { renderUserData: providerOptions.userData } : {}),
    });
  const provider = make();
  opened.push({ fake, provider });
  /** A second server process (no memory of this one's launches), as after a restart. */
  const restarted = (): AwsProvider => {
    const p = make();
    opened.push({ fake, provider: p });
    return p;
  };
  return { clock, fake, provider, restarted };
}

function request(id: string, template: TemplateSpec = TEMPLATE, extraTags: Record<string, string> = {}): ProviderCreateRequest {
  return {
    idempotencyKey: id,
    template,
    tags: { [TAG.shard]: 'eu1', [TAG.tenant]: 'default', [TAG.group]: 'web', [TAG.instanceId]: id, [TAG.createdAt]: '2026-12-06T09:00:00.000Z', ...extraTags },
  };
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    if (err instanceof Error) return err;
  }
  throw new Error('expected a rejection');
}

describe('AwsProvider.create', () => {
  it('launches one instance with the idempotency key as ClientToken, Drover\'s tags from launch, IMDSv2 required and the user data', async () => {
    const { fake, provider } = await setup({}, { userData: () => '#!/bin/sh\necho hi\n' });
    const created = await provider.create(request('i-00000000000000a1'));
    expect(created.providerId).toMatch(/^i-[0-9a-f]{17}$/);
    expect(['pending', 'running']).toContain(created.status);
    expect(created.tags[TAG.instanceId]).toBe('i-00000000000000a1');
    const [instance] = fake.instances();
    expect(fake.instances()).toHaveLength(1);
    expect(instance!.clientToken).toBe('i-00000000000000a1');
    expect(instance!.tags).toMatchObject({ [TAG.shard]: 'eu1', [TAG.group]: 'web', Name: 'drover/default/web/i-00000000000000a1' });
    expect(instance!.httpTokens).toBe('required');
    expect(instance!.instanceType).toBe('m7i.large');
    expect(instance!.market).toBe('on-demand');
    expect(SUBNETS).toContain(instance!.subnetId);
    expect(Buffer.from(instance!.userDataBase64 ?? '', 'base64').toString('utf8')).toBe('#!/bin/sh\necho hi\n');
    const run = fake.calls.find((c) => c.action === 'RunInstances');
    expect(run?.params).toMatchObject({ MinCount: '1', MaxCount: '1', ClientToken: 'i-00000000000000a1', 'IamInstanceProfile.Name': 'drover-agent' });
  });

  it('renders the agent\'s cloud-init bootstrap from the one-time token and the template\'s commands, and refuses user data that carries no token', async () => {
    const { fake, provider } = await setup();
    const template = { ...TEMPLATE, command: ['/usr/local/bin/web', '--port', '8080'], userData: '#cloud-config\npackages: [jq]\n' };
    const userData = { [USER_DATA.server]: 'https://drover.example:7400', [USER_DATA.instanceId]: 'i-00000000000000e1', [USER_DATA.bootstrapToken]: 'tok-one-time-abcdefghijklmnop' };
    const created = await provider.create({ ...request('i-00000000000000e1', template), userData });
    const text = Buffer.from(fake.instance(created.providerId)?.userDataBase64 ?? '', 'base64').toString('utf8');
    const agent = agentConfigFromUserData(text);
    expect(agent).toMatchObject({ instanceId: 'i-00000000000000e1', servers: ['https://drover.example:7400'], bootstrapToken: 'tok-one-time-abcdefghijklmnop', metadata: 'ec2', command: ['/usr/local/bin/web', '--port', '8080'] });
    expect(text).toContain('packages: [jq]');
    expect(provider.agentBootstrap).toBe('token');
    const err = await rejection(provider.create({ ...request('i-00000000000000e2', template), userData: { [USER_DATA.server]: 'https://drover.example:7400', [USER_DATA.agentCredential]: 'long-lived' } }));
    expect(err).toBeInstanceOf(PermanentError);
    expect(fake.instances()).toHaveLength(1);
  });

  it('spreads a group over its subnets by the instance id', () => {
    const template = awsTemplateSchema.parse(TEMPLATE);
    const firsts = new Set(Array.from({ length: 40 }, (_, i) => launchOptions(template, `i-${String(i).padStart(16, '0')}`)[0]!.subnetId));
    expect(firsts).toEqual(new Set(SUBNETS));
  });

  it('answers a repeated create, also from a restarted server, with the same instance and launches no second', async () => {
    const { fake, provider, restarted } = await setup();
    const first = await provider.create(request('i-00000000000000a2'));
    const again = await provider.create(request('i-00000000000000a2'));
    const afterRestart = await restarted().create(request('i-00000000000000a2'));
    expect(again.providerId).toBe(first.providerId);
    expect(afterRestart.providerId).toBe(first.providerId);
    expect(fake.instances()).toHaveLength(1);
  });

  it('finds the instance by its client token when a retry differs from the launch that succeeded (new user data), instead of launching twice', async () => {
    let n = 0;
    const { fake, restarted } = await setup({}, { userData: () => `token ${++n}` });
    const first = await restarted().create(request('i-00000000000000a3'));
    const retried = await restarted().create(request('i-00000000000000a3'));
    expect(fake.count('RunInstances', { error: 'IdempotentParameterMismatch' })).toBe(1);
    expect(retried.providerId).toBe(first.providerId);
    expect(retried.launchDetail).toMatch(/client token/);
    expect(fake.instances()).toHaveLength(1);
  });

  it('makes one instance of concurrent creates with one key', async () => {
    const { fake, provider } = await setup();
    const results = await Promise.all(Array.from({ length: 5 }, () => provider.create(request('i-00000000000000a4'))));
    expect(new Set(results.map((r) => r.providerId)).size).toBe(1);
    expect(fake.instances()).toHaveLength(1);
  });

  it('moves to the next subnet, then the next instance type, when one has no capacity, and says so in launchDetail', async () => {
    const { fake, provider } = await setup();
    fake.setCapacity('m7i.large', { onDemand: 0 });
    const created = await provider.create(request('i-00000000000000a5'));
    expect(fake.instance(created.providerId)?.instanceType).toBe('m6i.large');
    expect(created.launchDetail).toMatch(/^m6i\.large, on-demand, subnet-.*tried first: m7i\.large, on-demand, subnet-\w+: InsufficientInstanceCapacity; m7i\.large, on-demand, subnet-\w+: InsufficientInstanceCapacity$/);
    // Each refused attempt carried the same ClientToken: EC2 records a token only for a launch that succeeded.
    expect(new Set(fake.calls.filter((c) => c.action === 'RunInstances').map((c) => c.params.ClientToken))).toEqual(new Set(['i-00000000000000a5']));
  });

  it('falls back from spot to on-demand for spot-then-on-demand, and tries spot first again at the next create', async () => {
    const { fake, provider } = await setup();
    const template = { ...TEMPLATE, capacity: 'spot-then-on-demand', instanceTypes: ['m7i.large'] };
    fake.setCapacity('m7i.large', { spot: 0 });
    const onDemand = await provider.create(request('i-00000000000000a6', template));
    expect(fake.instance(onDemand.providerId)?.market).toBe('on-demand');
    expect(onDemand.launchDetail).toMatch(/^m7i\.large, on-demand.*tried first: m7i\.large, spot/);
    fake.setCapacity('m7i.large', { spot: 'unlimited' });
    const spot = await provider.create(request('i-00000000000000a7', template));
    expect(fake.instance(spot.providerId)?.market).toBe('spot');
  });

  it('fails retryably, having launched nothing, when no option has capacity', async () => {
    const { fake, provider } = await setup();
    fake.setCapacity('m7i.large', { onDemand: 0 });
    fake.setCapacity('m6i.large', { onDemand: 0 });
    const err = await rejection(provider.create(request('i-00000000000000a8')));
    expect(err).toBeInstanceOf(ProviderError);
    expect(isRetryable(err)).toBe(true);
    expect(err.message).toMatch(/no capacity for any option/);
    expect(fake.instances()).toHaveLength(0);
    // The SDK did not retry a capacity answer: one call per option (2 types x 2 subnets).
    expect(fake.count('RunInstances')).toBe(4);
  });

  it('refuses an unknown AMI permanently, saying what to fix', async () => {
    const { provider } = await setup({ knownImages: ['ami-0fffffffffffffff0'] });
    const err = await rejection(provider.create(request('i-00000000000000a9')));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toMatch(/InvalidAMIID\.NotFound.*imageId/);
  });

  it('refuses a missing permission permanently and names the IAM policy', async () => {
    const { fake, provider } = await setup();
    fake.failNext('RunInstances', { code: 'UnauthorizedOperation', message: 'You are not authorized to perform this operation.', status: 403 });
    const err = await rejection(provider.create(request('i-00000000000000b1')));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toMatch(/UnauthorizedOperation.*IAM/);
  });

  it('passes a throttle to the call gate at once (the SDK does not retry it)', async () => {
    const { fake, provider } = await setup();
    fake.failNext('RunInstances', { code: 'RequestLimitExceeded', message: 'Request limit exceeded.', status: 503 });
    const err = await rejection(provider.create(request('i-00000000000000b2')));
    expect(isThrottled(err)).toBe(true);
    expect(fake.count('RunInstances')).toBe(1);
    expect(fake.instances()).toHaveLength(0);
  });

  it('lets the SDK retry a server fault (the ClientToken makes it safe)', async () => {
    const { fake, provider } = await setup();
    fake.failNext('RunInstances', { code: 'InternalError', message: 'An internal error has occurred', status: 500 });
    const created = await provider.create(request('i-00000000000000b3'));
    expect(fake.count('RunInstances')).toBe(2);
    expect(fake.instances().map((i) => i.instanceId)).toEqual([created.providerId]);
  });

  it('refuses, without calling EC2, a template that is not an EC2 one and user data over 16 KB', async () => {
    const { fake, provider } = await setup({}, { userData: () => 'x'.repeat(16 * 1024 + 1) });
    const bad = await rejection(provider.create(request('i-00000000000000b4', { command: ['sleep', '1'] })));
    expect(bad).toBeInstanceOf(PermanentError);
    expect(bad.message).toMatch(/imageId: is required/);
    const big = await rejection(provider.create(request('i-00000000000000b5')));
    expect(big).toBeInstanceOf(PermanentError);
    expect(big.message).toMatch(/16385 bytes; EC2 allows 16384/);
    expect(fake.count('RunInstances')).toBe(0);
  });
});

describe('AwsProvider.status and delete', () => {
  it('maps EC2 states onto Drover\'s: pending, running, shutting-down as deleting, terminated', async () => {
    const { clock, fake, provider } = await setup({ pendingMs: 20_000, shuttingDownMs: 30_000 });
    const { providerId } = await provider.create(request('i-00000000000000c1'));
    expect(await provider.status(providerId)).toBe('pending');
    await clock.advance(20_000);
    expect(await provider.status(providerId)).toBe('running');
    await provider.delete(providerId);
    expect(await provider.status(providerId)).toBe('deleting');
    await clock.advance(30_000);
    expect(await provider.status(providerId)).toBe('terminated');
    fake.setState(providerId, 'terminated');
    // Deleting a terminated instance is fine (TerminateInstances is idempotent).
    await provider.delete(providerId);
  });

  it('takes "not found" for an instance just launched as a retryable error within the grace window, and as not found after it', async () => {
    const { clock, provider } = await setup({ visibilityDelayMs: 300_000 }, { graceMs: 60_000 });
    const { providerId } = await provider.create(request('i-00000000000000c2'));
    const early = await rejection(provider.status(providerId));
    expect(early).not.toBeInstanceOf(InstanceNotFoundError);
    expect(isRetryable(early)).toBe(true);
    expect(early.message).toMatch(/eventually consistent/);
    const earlyTags = await rejection(provider.setTags(providerId, { [TAG.drainReason]: 'scaleDown' }));
    expect(isRetryable(earlyTags)).toBe(true);
    await clock.advance(60_000);
    expect(await rejection(provider.status(providerId))).toBeInstanceOf(InstanceNotFoundError);
    expect(await rejection(provider.delete(providerId))).toBeInstanceOf(InstanceNotFoundError);
  });

  it('lists an instance it just launched while EC2\'s list does not show it yet, so a resync does not take it for vanished; not once it was deleted', async () => {
    const { clock, provider } = await setup({ visibilityDelayMs: 30_000 }, { graceMs: 60_000 });
    const { providerId } = await provider.create(request('i-00000000000000c3'));
    const listed = await provider.list({ [TAG.shard]: 'eu1' });
    expect(listed.map((i) => i.providerId)).toEqual([providerId]);
    expect(listed[0]?.tags[TAG.instanceId]).toBe('i-00000000000000c3');
    expect(await provider.list({ [TAG.shard]: 'other' })).toEqual([]);
    await clock.advance(30_000);
    await provider.delete(providerId);
    expect(await provider.list({ [TAG.shard]: 'eu1' })).toEqual([]);
  });

  it('answers not found for an instance it never launched', async () => {
    const { provider } = await setup();
    expect(await rejection(provider.status('i-0123456789abcdef0'))).toBeInstanceOf(InstanceNotFoundError);
    expect(await rejection(provider.delete('i-0123456789abcdef0'))).toBeInstanceOf(InstanceNotFoundError);
  });
});

describe('AwsProvider.list and setTags', () => {
  it('lists every live instance with the tags, over all pages, and leaves out terminated ones and other shards', async () => {
    const { fake, provider } = await setup({}, { pageSize: 5 });
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await provider.create(request(`i-${String(i).padStart(16, '0')}`))).providerId);
    await provider.create(request('i-00000000000000ff', TEMPLATE, { [TAG.shard]: 'other' }));
    await provider.delete(ids[0]!);
    fake.terminateExternally(ids[1]!);
    const listed = await provider.list({ [TAG.shard]: 'eu1' });
    expect(listed.map((i) => i.providerId).sort()).toEqual(ids.slice(2).sort());
    expect(listed.every((i) => i.tags[TAG.shard] === 'eu1' && i.status === 'running')).toBe(true);
    expect(fake.calls.filter((c) => c.action === 'DescribeInstances' && c.params.MaxResults === '5').length).toBeGreaterThanOrEqual(2);
  });

  it('writes drain tags, empty values included (an empty drain start means "cleared"), and lists them back', async () => {
    const { provider } = await setup();
    const { providerId } = await provider.create(request('i-00000000000000d1'));
    await provider.setTags(providerId, { [TAG.drainStartedAt]: '2026-12-06T09:01:00.000Z', [TAG.drainDeadline]: '2026-12-06T09:06:00.000Z', [TAG.drainReason]: 'scaleDown' });
    await provider.setTags(providerId, { [TAG.drainStartedAt]: '', [TAG.drainDeadline]: '', [TAG.drainReason]: '', [TAG.drainCancelledAt]: '2026-12-06T09:02:00.000Z' });
    const [listed] = await provider.list({ [TAG.instanceId]: 'i-00000000000000d1' });
    expect(listed?.tags).toMatchObject({ [TAG.drainStartedAt]: '', [TAG.drainDeadline]: '', [TAG.drainReason]: '', [TAG.drainCancelledAt]: '2026-12-06T09:02:00.000Z' });
  });

  it('refuses a tag value longer than EC2 allows, naming the tag', async () => {
    const { provider } = await setup();
    const { providerId } = await provider.create(request('i-00000000000000d2'));
    const err = await rejection(provider.setTags(providerId, { [TAG.drainReason]: 'x'.repeat(257) }));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toMatch(/drover:drain-reason has 257 characters; EC2 allows 256/);
  });
});
