/**
 * The fake EC2 through the real SDK: ClientToken idempotency, RunInstances validation and
 * capacity, tag limits and DeleteTags semantics, and requests that are not EC2 requests at all.
 */
import {
  CreateTagsCommand,
  DeleteTagsCommand,
  DescribeInstancesCommand,
  type EC2Client,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import { rawRequest } from '../../helpers/raw-http.js';
import { FakeEc2, type FakeEc2Options } from './index.js';
import { ec2Client, ManualClock, rejectionOf } from './sdk.js';

const AMI = 'ami-0abcdef1234567890';
const launch: RunInstancesCommandInput = { ImageId: AMI, InstanceType: 't3.micro', MinCount: 1, MaxCount: 1 };

let fake: FakeEc2 | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function setup(options: FakeEc2Options = {}, maxAttempts = 1): Promise<{ fake: FakeEc2; ec2: EC2Client; clock: ManualClock; endpoint: string }> {
  const clock = new ManualClock();
  fake = new FakeEc2({ now: clock.now, ...options });
  const endpoint = await fake.start();
  return { fake, ec2: ec2Client(endpoint, { maxAttempts }), clock, endpoint };
}

async function launchOne(ec2: EC2Client, input: Partial<RunInstancesCommandInput> = {}): Promise<string> {
  return (await ec2.send(new RunInstancesCommand({ ...launch, ...input }))).Instances![0]!.InstanceId!;
}

async function tagsOf(ec2: EC2Client, id: string): Promise<Record<string, string>> {
  const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  return Object.fromEntries((out.Reservations![0]!.Instances![0]!.Tags ?? []).map((t) => [t.Key!, t.Value!]));
}

describe('ClientToken idempotency', () => {
  it('answers the same reservation and instance for the same token and parameters, launching nothing new', async () => {
    const { fake, ec2 } = await setup();
    const first = await ec2.send(new RunInstancesCommand({ ...launch, ClientToken: 'create-web-7' }));
    const again = await ec2.send(new RunInstancesCommand({ ...launch, ClientToken: 'create-web-7' }));
    expect(again.ReservationId).toBe(first.ReservationId);
    expect(again.Instances!.map((i) => i.InstanceId)).toEqual(first.Instances!.map((i) => i.InstanceId));
    expect(fake.instances()).toHaveLength(1);
    expect(fake.count('RunInstances')).toBe(2);
  });

  it('answers the instance as it is now, even after it was terminated and left the listings, and without using capacity', async () => {
    const { fake, ec2, clock } = await setup({ terminatedListedMs: 1_000 });
    fake.setCapacity('t3.micro', { onDemand: 1 });
    const id = await launchOne(ec2, { ClientToken: 'tok' });
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    clock.advance(86_400_000);
    const again = await ec2.send(new RunInstancesCommand({ ...launch, ClientToken: 'tok' }));
    expect(again.Instances![0]).toMatchObject({ InstanceId: id, State: { Name: 'terminated' } });
    expect(fake.instances()).toHaveLength(1);
  });

  it('refuses the same token with different parameters with IdempotentParameterMismatch', async () => {
    const { fake, ec2 } = await setup();
    await launchOne(ec2, { ClientToken: 'tok', TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'a', Value: '1' }] }] });
    const e = await rejectionOf(() =>
      ec2.send(new RunInstancesCommand({ ...launch, ClientToken: 'tok', TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'a', Value: '2' }] }] })),
    );
    expect(e.name).toBe('IdempotentParameterMismatch');
    expect(e.$metadata?.httpStatusCode).toBe(400);
    expect(fake.instances()).toHaveLength(1);
  });

  it('launches a new instance per call when the caller gives no token (the SDK makes a fresh one each time)', async () => {
    const { fake, ec2 } = await setup();
    await launchOne(ec2);
    await launchOne(ec2);
    const tokens = fake.instances().map((i) => i.clientToken);
    expect(tokens).toHaveLength(2);
    expect(tokens[0]).not.toBe(tokens[1]);
  });

  it('makes the SDK retry of a timed-out RunInstances return the instance the first attempt launched', async () => {
    const clock = new ManualClock();
    let runs = 0;
    // The first answer is held back past the client's timeout; the work is done at arrival, as
    // when EC2 launches an instance but the response is lost.
    fake = new FakeEc2({ now: clock.now, responseDelayMs: (action) => (action === 'RunInstances' && ++runs === 1 ? 60_000 : 0) });
    const ec2 = ec2Client(await fake.start(), { maxAttempts: 3, requestTimeoutMs: 500 });
    const out = await ec2.send(new RunInstancesCommand(launch));
    expect(out.$metadata.attempts).toBe(2);
    expect(fake.instances().map((i) => i.instanceId)).toEqual([out.Instances![0]!.InstanceId]);
    expect(fake.calls.map((c) => c.params.ClientToken)).toEqual([fake.calls[0]!.params.ClientToken, fake.calls[0]!.params.ClientToken]);
  });
});

describe('RunInstances validation', () => {
  it.each<[string, string, FakeEc2Options, Partial<RunInstancesCommandInput>, string]>([
    ['no ImageId and no template', 'MissingParameter', {}, { ImageId: undefined }, 'The request must contain the parameter ImageId'],
    ['a malformed AMI id', 'InvalidAMIID.Malformed', {}, { ImageId: 'ami-xyz' }, 'Invalid id: "ami-xyz" (expecting "ami-...")'],
    ['an AMI not among knownImages', 'InvalidAMIID.NotFound', { knownImages: ['ami-11111111'] }, {}, `The image id '[${AMI}]' does not exist`],
    ['a type not among knownInstanceTypes', 'InvalidParameterValue', { knownInstanceTypes: ['m6i.large'] }, { InstanceType: 't3.micro' }, "Invalid value 't3.micro' for InstanceType."],
    ['a subnet not among knownSubnets', 'InvalidSubnetID.NotFound', { knownSubnets: ['subnet-0aaa1111bbbb2222c'] }, { SubnetId: 'subnet-0ffffffffffffffff' }, "The subnet ID 'subnet-0ffffffffffffffff' does not exist"],
    ['an unknown launch template', 'InvalidLaunchTemplateName.NotFoundException', {}, { LaunchTemplate: { LaunchTemplateName: 'nope' } }, 'The specified launch template, with template name nope, does not exist.'],
    ['MinCount above the instance limit', 'InstanceLimitExceeded', {}, { MinCount: 21, MaxCount: 21 }, 'You have requested more instances (21) than your current instance limit of 20 allows for the specified instance type.'],
    ['user data that is not base64', 'InvalidParameterValue', {}, { UserData: 'not base64!' }, 'Invalid BASE64 encoding of user data.'],
  ])('refuses %s with %s (HTTP 400), launching nothing', async (_what, code, options, input, message) => {
    const { fake, ec2 } = await setup(options);
    const e = await rejectionOf(() => ec2.send(new RunInstancesCommand({ ...launch, ...input })));
    expect(e.name).toBe(code);
    expect(e.message).toBe(message);
    expect(e.$metadata?.httpStatusCode).toBe(400);
    expect(fake.instances()).toEqual([]);
    expect(fake.calls.map((c) => c.error)).toEqual([code]);
  });

  it('accepts an AMI, type and subnet that are known', async () => {
    const { ec2 } = await setup({ knownImages: [AMI], knownInstanceTypes: ['t3.micro'], knownSubnets: ['subnet-0aaa1111bbbb2222c'] });
    await expect(launchOne(ec2, { SubnetId: 'subnet-0aaa1111bbbb2222c' })).resolves.toMatch(/^i-/);
  });
});

describe('capacity', () => {
  it('answers InsufficientInstanceCapacity (HTTP 500) once a type’s on-demand capacity is used, other types and spot unaffected', async () => {
    const { fake, ec2 } = await setup();
    fake.setCapacity('t3.micro', { onDemand: 1 });
    await launchOne(ec2);
    const e = await rejectionOf(() => ec2.send(new RunInstancesCommand(launch)));
    expect(e.name).toBe('InsufficientInstanceCapacity');
    expect(e.$metadata?.httpStatusCode).toBe(500);
    expect(e.message).toMatch(/^We currently do not have sufficient t3\.micro capacity in the Availability Zone you requested \(eu-central-1a\)\./);
    await expect(launchOne(ec2, { InstanceType: 'm6i.large' })).resolves.toMatch(/^i-/);
    await expect(launchOne(ec2, { InstanceMarketOptions: { MarketType: 'spot' } })).resolves.toMatch(/^i-/);
    expect(fake.count('RunInstances', { error: 'InsufficientInstanceCapacity' })).toBe(1);
  });

  it('answers spot launches InsufficientInstanceCapacity when the type has no spot capacity, and launches again once capacity is given', async () => {
    const { fake, ec2 } = await setup();
    fake.setCapacity('c6g.large', { spot: 0 });
    const e = await rejectionOf(() => ec2.send(new RunInstancesCommand({ ...launch, InstanceType: 'c6g.large', InstanceMarketOptions: { MarketType: 'spot' } })));
    expect(e.name).toBe('InsufficientInstanceCapacity');
    expect(e.message).toBe('There is no Spot capacity available that matches your request.');
    await expect(launchOne(ec2, { InstanceType: 'c6g.large' })).resolves.toMatch(/^i-/);
    fake.setCapacity('c6g.large', { spot: 'unlimited' });
    await expect(launchOne(ec2, { InstanceType: 'c6g.large', InstanceMarketOptions: { MarketType: 'spot' } })).resolves.toMatch(/^i-/);
  });

  it('refuses a request whose MinCount exceeds what is left, launching none of it', async () => {
    const { fake, ec2 } = await setup();
    fake.setCapacity('t3.micro', { onDemand: 2 });
    const e = await rejectionOf(() => ec2.send(new RunInstancesCommand({ ...launch, MinCount: 3, MaxCount: 3 })));
    expect(e.name).toBe('InsufficientInstanceCapacity');
    expect(fake.instances()).toEqual([]);
    expect((await ec2.send(new RunInstancesCommand({ ...launch, MinCount: 2, MaxCount: 2 }))).Instances).toHaveLength(2);
  });
});

describe('tags', () => {
  it('adds and overwrites tags with CreateTags, values with markup characters intact', async () => {
    const { ec2 } = await setup();
    const id = await launchOne(ec2, { TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'a', Value: '1' }] }] });
    await ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: 'a', Value: '2' }, { Key: 'b&<c>', Value: "it's \"quoted\"" }, { Key: 'empty', Value: '' }] }));
    expect(await tagsOf(ec2, id)).toEqual({ a: '2', 'b&<c>': 'it\'s "quoted"', empty: '' });
  });

  it('refuses a 51st tag with TagLimitExceeded, changing nothing; aws: tags do not count', async () => {
    const { fake, ec2 } = await setup();
    fake.addLaunchTemplate('lt', {});
    const fifty = Array.from({ length: 50 }, (_, i) => ({ Key: `k${i}`, Value: `v${i}` }));
    const id = await launchOne(ec2, { LaunchTemplate: { LaunchTemplateName: 'lt' }, TagSpecifications: [{ ResourceType: 'instance', Tags: fifty }] });
    expect(Object.keys(await tagsOf(ec2, id))).toHaveLength(52); // 50 + the template's two aws: tags
    await ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: 'k0', Value: 'overwritten' }] }));
    const e = await rejectionOf(() => ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: 'k0', Value: 'x' }, { Key: 'k50', Value: 'v50' }] })));
    expect(e.name).toBe('TagLimitExceeded');
    expect((await tagsOf(ec2, id)).k0).toBe('overwritten');
    const atLaunch = await rejectionOf(() => ec2.send(new RunInstancesCommand({ ...launch, TagSpecifications: [{ ResourceType: 'instance', Tags: [...fifty, { Key: 'k50', Value: '' }] }] })));
    expect(atLaunch.name).toBe('TagLimitExceeded');
  });

  it.each([
    ['a key over 128 characters', { Key: 'k'.repeat(129), Value: 'v' }, /^Tag key exceeds the maximum length of 128 characters/],
    ['a value over 256 characters', { Key: 'k', Value: 'v'.repeat(257) }, /^Tag value exceeds the maximum length of 256 characters/],
    ['a key starting with aws:', { Key: 'AWS:mine', Value: 'v' }, /^Tag keys starting with 'aws:' are reserved for internal use$/],
  ])('refuses %s with InvalidParameterValue, in CreateTags and at launch', async (_what, tag, message) => {
    const { fake, ec2 } = await setup();
    const id = await launchOne(ec2);
    const e = await rejectionOf(() => ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [tag] })));
    expect(e.name).toBe('InvalidParameterValue');
    expect(e.message).toMatch(message);
    const atLaunch = await rejectionOf(() => ec2.send(new RunInstancesCommand({ ...launch, TagSpecifications: [{ ResourceType: 'instance', Tags: [tag] }] })));
    expect(atLaunch.name).toBe('InvalidParameterValue');
    expect(fake.instances()).toHaveLength(1);
  });

  it('accepts 128-character keys and 256-character values, counted in Unicode characters', async () => {
    const { ec2 } = await setup();
    const id = await launchOne(ec2);
    const key = 'é'.repeat(128);
    await ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: key, Value: '🙂'.repeat(256) }] }));
    expect((await tagsOf(ec2, id))[key]).toBe('🙂'.repeat(256));
  });

  it('DeleteTags deletes a key whatever its value when no value is given, only an equal value when one is, and every user tag when no tag is given', async () => {
    const { fake, ec2 } = await setup();
    fake.addLaunchTemplate('lt', {});
    const id = await launchOne(ec2, { LaunchTemplate: { LaunchTemplateName: 'lt' } });
    await ec2.send(new CreateTagsCommand({ Resources: [id], Tags: ['a', 'b', 'c', 'd'].map((k) => ({ Key: k, Value: `${k}-value` })).concat([{ Key: 'e', Value: '' }]) }));

    await ec2.send(new DeleteTagsCommand({ Resources: [id], Tags: [{ Key: 'a' }, { Key: 'b', Value: 'not-b-value' }, { Key: 'c', Value: 'c-value' }, { Key: 'missing' }] }));
    expect(await tagsOf(ec2, id)).toMatchObject({ b: 'b-value', d: 'd-value', e: '' });
    expect(await tagsOf(ec2, id)).not.toHaveProperty('a');
    expect(await tagsOf(ec2, id)).not.toHaveProperty('c');

    await ec2.send(new DeleteTagsCommand({ Resources: [id], Tags: [{ Key: 'd', Value: '' }, { Key: 'e', Value: '' }] }));
    expect(await tagsOf(ec2, id)).toHaveProperty('d');
    expect(await tagsOf(ec2, id)).not.toHaveProperty('e');

    await ec2.send(new DeleteTagsCommand({ Resources: [id] }));
    expect(Object.keys(await tagsOf(ec2, id)).sort()).toEqual(['aws:ec2launchtemplate:id', 'aws:ec2launchtemplate:version']);
  });

  it('refuses to tag an unknown instance or a resource that is not an instance', async () => {
    const { ec2 } = await setup();
    const unknown = await rejectionOf(() => ec2.send(new CreateTagsCommand({ Resources: ['i-0000000000000000a'], Tags: [{ Key: 'k', Value: 'v' }] })));
    expect(unknown.name).toBe('InvalidInstanceID.NotFound');
    const other = await rejectionOf(() => ec2.send(new DeleteTagsCommand({ Resources: ['vol-0123456789abcdef0'] })));
    expect(other.name).toBe('InvalidID');
  });
});

describe('requests that are not EC2 requests', () => {
  it('answers an action it does not model with InvalidAction, in EC2’s error document', async () => {
    const { fake, endpoint } = await setup();
    const res = await rawRequest(endpoint, {
      method: 'POST',
      target: '/',
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', authorization: 'AWS4-HMAC-SHA256 whatever' },
      body: 'Action=StopInstances&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0',
    });
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toBe('text/xml;charset=UTF-8');
    expect(res.text).toMatch(
      /^<\?xml version="1.0" encoding="UTF-8"\?>\n<Response><Errors><Error><Code>InvalidAction<\/Code><Message>The action StopInstances is not valid for this web service.<\/Message><\/Error><\/Errors><RequestID>[0-9a-f-]{36}<\/RequestID><\/Response>$/,
    );
    expect(fake.calls).toEqual([{ action: 'StopInstances', at: expect.any(Number), error: 'InvalidAction', params: { 'InstanceId.1': 'i-0123456789abcdef0' } }]);
  });

  it('answers a request without a form body MissingAction', async () => {
    const { endpoint } = await setup();
    const res = await rawRequest(endpoint, { method: 'GET', target: '/?Action=DescribeInstances&Version=2016-11-15' });
    expect(res.status).toBe(400);
    expect(res.text).toContain('<Code>MissingAction</Code>');
  });
});
