/**
 * The fake EC2 through the real SDK: what RunInstances launches and answers, the instance life
 * cycle on the injected clock (pending → running → shutting-down → terminated → gone), the
 * cloud's own terminations, and eventual consistency.
 */
import {
  CreateTagsCommand,
  DescribeInstancesCommand,
  type EC2Client,
  type Instance,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeEc2, type FakeEc2Options, type FakeInstance } from './index.js';
import { ec2Client, ManualClock, rejectionOf } from './sdk.js';

const AMI = 'ami-0abcdef1234567890';
const launch: RunInstancesCommandInput = { ImageId: AMI, InstanceType: 't3.micro', MinCount: 1, MaxCount: 1 };

let fake: FakeEc2 | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function setup(options: FakeEc2Options = {}): Promise<{ fake: FakeEc2; ec2: EC2Client; clock: ManualClock }> {
  const clock = new ManualClock();
  fake = new FakeEc2({ now: clock.now, ...options });
  const ec2 = ec2Client(await fake.start(), { maxAttempts: 1 });
  return { fake, ec2, clock };
}

async function describeOne(ec2: EC2Client, id: string): Promise<Instance> {
  const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  expect(out.Reservations).toHaveLength(1);
  expect(out.Reservations![0]!.Instances).toHaveLength(1);
  return out.Reservations![0]!.Instances![0]!;
}

describe('RunInstances', () => {
  it('launches a pending instance that DescribeInstances shows running once pendingMs has passed on the injected clock', async () => {
    const { ec2, clock } = await setup({ pendingMs: 30_000 });
    const run = await ec2.send(new RunInstancesCommand(launch));
    const id = run.Instances![0]!.InstanceId!;
    expect(id).toMatch(/^i-[0-9a-f]{17}$/);
    expect(run.ReservationId).toMatch(/^r-[0-9a-f]{17}$/);
    expect(run.Instances![0]!.State).toEqual({ Code: 0, Name: 'pending' });

    clock.advance(29_999);
    expect((await describeOne(ec2, id)).State).toEqual({ Code: 0, Name: 'pending' });
    clock.advance(1);
    expect((await describeOne(ec2, id)).State).toEqual({ Code: 16, Name: 'running' });
  });

  it('is running at the first look when pendingMs is 0 (the default)', async () => {
    const { ec2 } = await setup();
    const run = await ec2.send(new RunInstancesCommand(launch));
    expect((await describeOne(ec2, run.Instances![0]!.InstanceId!)).State?.Name).toBe('running');
  });

  it('answers the instance as EC2 does: type, zone and VPC of the subnet, groups, profile, spot lifecycle, tags, IMDS options, launch time to the second', async () => {
    const { ec2, clock } = await setup({ knownSubnets: { 'subnet-0aaa1111bbbb2222c': { availabilityZone: 'eu-central-1b', vpcId: 'vpc-0123456789abcdef0' } } });
    clock.advance(1_234);
    const run = await ec2.send(
      new RunInstancesCommand({
        ...launch,
        SubnetId: 'subnet-0aaa1111bbbb2222c',
        SecurityGroupIds: ['sg-0123456789abcdef0', 'sg-0fedcba9876543210'],
        IamInstanceProfile: { Arn: 'arn:aws:iam::123456789012:instance-profile/drover-agent' },
        InstanceMarketOptions: { MarketType: 'spot', SpotOptions: { MaxPrice: '0.05', SpotInstanceType: 'one-time' } },
        MetadataOptions: { HttpTokens: 'required' },
        TagSpecifications: [
          { ResourceType: 'instance', Tags: [{ Key: 'drover:group', Value: 'default/web' }, { Key: 'odd', Value: '<a & "b">' }] },
          { ResourceType: 'volume', Tags: [{ Key: 'only-on-volumes', Value: 'x' }] },
        ],
      }),
    );
    const i = run.Instances![0]!;
    expect(i).toMatchObject({
      ImageId: AMI,
      InstanceType: 't3.micro',
      Placement: { AvailabilityZone: 'eu-central-1b' },
      SubnetId: 'subnet-0aaa1111bbbb2222c',
      VpcId: 'vpc-0123456789abcdef0',
      SecurityGroups: [{ GroupId: 'sg-0123456789abcdef0' }, { GroupId: 'sg-0fedcba9876543210' }],
      IamInstanceProfile: { Arn: 'arn:aws:iam::123456789012:instance-profile/drover-agent' },
      InstanceLifecycle: 'spot',
      MetadataOptions: { HttpTokens: 'required' },
      LaunchTime: new Date(Date.UTC(2026, 0, 5, 9, 0, 1)),
    });
    expect(i.PrivateIpAddress).toMatch(/^10\.0\.\d+\.\d+$/);
    expect(i.ClientToken).toMatch(/^[0-9a-f-]{36}$/); // the SDK fills in an idempotency token
    expect(i.Tags).toEqual([
      { Key: 'drover:group', Value: 'default/web' },
      { Key: 'odd', Value: '<a & "b">' },
    ]);
    expect(i).not.toHaveProperty('UserData');
  });

  it('names the instance profile from its name, leaves an on-demand instance without a lifecycle, and an untagged one without Tags', async () => {
    const { ec2 } = await setup();
    const i = (await ec2.send(new RunInstancesCommand({ ...launch, IamInstanceProfile: { Name: 'drover-agent' } }))).Instances![0]!;
    expect(i.IamInstanceProfile?.Arn).toBe('arn:aws:iam::123456789012:instance-profile/drover-agent');
    expect(i.InstanceLifecycle).toBeUndefined();
    expect(i.Tags).toBeUndefined();
    expect(i.Placement?.AvailabilityZone).toBe('eu-central-1a');
  });

  it('keeps the user data as sent, and hands onLaunch each launched instance with it decoded', async () => {
    const launched: Array<FakeInstance & { userData: string }> = [];
    const { fake, ec2 } = await setup({ onLaunch: (i) => launched.push(i) });
    const script = '#!/bin/sh\ndrover agent --server https://drover.example\n';
    const run = await ec2.send(new RunInstancesCommand({ ...launch, MinCount: 2, MaxCount: 2, UserData: Buffer.from(script).toString('base64') }));
    expect(run.Instances).toHaveLength(2);
    expect(launched.map((i) => i.instanceId)).toEqual(run.Instances!.map((i) => i.InstanceId));
    expect(launched[0]!.userData).toBe(script);
    expect(fake.instance(launched[0]!.instanceId)!.userDataBase64).toBe(Buffer.from(script).toString('base64'));
    expect(new Set(run.Instances!.map((i) => i.AmiLaunchIndex))).toEqual(new Set([0, 1]));
  });

  it('launches as many as capacity allows between MinCount and MaxCount, in one reservation', async () => {
    const { fake, ec2 } = await setup();
    fake.setCapacity('t3.micro', { onDemand: 3 });
    const run = await ec2.send(new RunInstancesCommand({ ...launch, MinCount: 2, MaxCount: 5 }));
    expect(run.Instances).toHaveLength(3);
    expect(new Set(fake.instances().map((i) => i.reservationId))).toEqual(new Set([run.ReservationId]));
  });

  it('takes image and type from a registered launch template, and tags the instance with the template as EC2 does', async () => {
    const { fake, ec2 } = await setup();
    const template = fake.addLaunchTemplate('drover-web', { imageId: 'ami-0123456789abcdef0', instanceType: 'm6i.large' });
    expect(template.id).toMatch(/^lt-[0-9a-f]{17}$/);
    const run = await ec2.send(new RunInstancesCommand({ MinCount: 1, MaxCount: 1, LaunchTemplate: { LaunchTemplateName: 'drover-web', Version: '3' } }));
    const i = run.Instances![0]!;
    expect(i.ImageId).toBe('ami-0123456789abcdef0');
    expect(i.InstanceType).toBe('m6i.large');
    expect(i.Tags).toEqual(
      expect.arrayContaining([
        { Key: 'aws:ec2launchtemplate:id', Value: template.id },
        { Key: 'aws:ec2launchtemplate:version', Value: '3' },
      ]),
    );
    const byId = await ec2.send(new RunInstancesCommand({ ...launch, LaunchTemplate: { LaunchTemplateId: template.id } }));
    expect(byId.Instances![0]!.InstanceType).toBe('t3.micro'); // the request's own values win
    expect(fake.instance(byId.Instances![0]!.InstanceId!)!.launchTemplate).toEqual({ id: template.id, name: 'drover-web', version: '$Default' });
  });
});

describe('termination', () => {
  it('goes shutting-down then terminated after shuttingDownMs, stays listed for terminatedListedMs, then is gone', async () => {
    const { ec2, clock } = await setup({ shuttingDownMs: 10_000, terminatedListedMs: 60_000 });
    const id = (await ec2.send(new RunInstancesCommand(launch))).Instances![0]!.InstanceId!;
    const term = await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    expect(term.TerminatingInstances).toEqual([{ InstanceId: id, PreviousState: { Code: 16, Name: 'running' }, CurrentState: { Code: 32, Name: 'shutting-down' } }]);

    clock.advance(9_999);
    expect((await describeOne(ec2, id)).State?.Name).toBe('shutting-down');
    clock.advance(1);
    const terminated = await describeOne(ec2, id);
    expect(terminated.State).toEqual({ Code: 48, Name: 'terminated' });
    expect(terminated.StateReason?.Code).toBe('Client.UserInitiatedShutdown');
    expect(terminated.StateTransitionReason).toMatch(/^User initiated \(2026-01-05 09:00:00 GMT\)$/);

    clock.advance(59_999);
    expect((await describeOne(ec2, id)).State?.Name).toBe('terminated');
    clock.advance(1);
    const gone = await rejectionOf(() => ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] })));
    expect(gone.name).toBe('InvalidInstanceID.NotFound');
    expect((await ec2.send(new DescribeInstancesCommand({}))).Reservations).toEqual([]);
  });

  it('accepts terminating an instance already terminated but still listed, answering terminated for both states', async () => {
    const { ec2 } = await setup();
    const id = (await ec2.send(new RunInstancesCommand(launch))).Instances![0]!.InstanceId!;
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    const again = await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    expect(again.TerminatingInstances).toEqual([{ InstanceId: id, PreviousState: { Code: 48, Name: 'terminated' }, CurrentState: { Code: 48, Name: 'terminated' } }]);
  });

  it('refuses ids never seen with InvalidInstanceID.NotFound naming them all, and bad ids with InvalidInstanceID.Malformed, terminating nothing', async () => {
    const { fake, ec2 } = await setup();
    const id = (await ec2.send(new RunInstancesCommand(launch))).Instances![0]!.InstanceId!;
    const unknown = await rejectionOf(() => ec2.send(new TerminateInstancesCommand({ InstanceIds: [id, 'i-0000000000000000a', 'i-0000000000000000b'] })));
    expect(unknown.name).toBe('InvalidInstanceID.NotFound');
    expect(unknown.message).toBe("The instance IDs 'i-0000000000000000a, i-0000000000000000b' do not exist");
    expect(unknown.$metadata?.httpStatusCode).toBe(400);
    const malformed = await rejectionOf(() => ec2.send(new TerminateInstancesCommand({ InstanceIds: ['instance-1'] })));
    expect(malformed.name).toBe('InvalidInstanceID.Malformed');
    expect(fake.instance(id)!.state).toBe('running');
  });

  it('lets the cloud take a spot instance away, with the spot reason, calling onTerminate once', async () => {
    const terminated: string[] = [];
    const { fake, ec2 } = await setup({ shuttingDownMs: 5_000, onTerminate: (i) => terminated.push(`${i.instanceId}:${i.state}`) });
    const id = (await ec2.send(new RunInstancesCommand({ ...launch, InstanceMarketOptions: { MarketType: 'spot' } }))).Instances![0]!.InstanceId!;
    expect(fake.terminateExternally(id).state).toBe('shutting-down');
    const seen = await describeOne(ec2, id);
    expect(seen.State?.Name).toBe('shutting-down');
    expect(seen.StateReason).toEqual({ Code: 'Server.SpotInstanceTermination', Message: 'Server.SpotInstanceTermination: Spot instance termination' });
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    expect(terminated).toEqual([`${id}:shutting-down`]);
    expect(fake.running()).toEqual([]);
  });

  it('pins a state set by setState against the clock until the instance is terminated', async () => {
    const { fake, ec2, clock } = await setup({ pendingMs: 1_000 });
    const id = (await ec2.send(new RunInstancesCommand(launch))).Instances![0]!.InstanceId!;
    fake.setState(id, 'pending');
    clock.advance(3_600_000);
    expect((await describeOne(ec2, id)).State?.Name).toBe('pending');
    fake.setState(id, 'stopped');
    expect((await describeOne(ec2, id)).State).toEqual({ Code: 80, Name: 'stopped' });
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    expect((await describeOne(ec2, id)).State?.Name).toBe('terminated');
  });
});

describe('eventual consistency', () => {
  it('hides an instance younger than visibilityDelayMs from DescribeInstances, CreateTags and TerminateInstances', async () => {
    const { fake, ec2, clock } = await setup({ visibilityDelayMs: 2_000 });
    const id = (await ec2.send(new RunInstancesCommand(launch))).Instances![0]!.InstanceId!;
    expect(fake.instances().map((i) => i.instanceId)).toEqual([id]); // the fake itself sees it

    for (const call of [
      () => ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] })),
      () => ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: 'k', Value: 'v' }] })),
      () => ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] })),
    ]) {
      const e = await rejectionOf(call);
      expect(e.name).toBe('InvalidInstanceID.NotFound');
      expect(e.message).toBe(`The instance ID '${id}' does not exist`);
    }
    const listed = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-state-name', Values: ['pending', 'running'] }] }));
    expect(listed.Reservations).toEqual([]);

    clock.advance(2_000);
    expect((await describeOne(ec2, id)).InstanceId).toBe(id);
    expect(fake.instance(id)!.state).toBe('running');
  });

  it('shows a just-terminated instance in its previous state for terminatedVisibleAsRunningMs', async () => {
    const { ec2, clock } = await setup({ terminatedVisibleAsRunningMs: 3_000 });
    const id = (await ec2.send(new RunInstancesCommand(launch))).Instances![0]!.InstanceId!;
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    expect((await describeOne(ec2, id)).State?.Name).toBe('running');
    const byState = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-state-name', Values: ['running'] }] }));
    expect(byState.Reservations?.[0]?.Instances?.[0]?.InstanceId).toBe(id);
    clock.advance(3_000);
    expect((await describeOne(ec2, id)).State?.Name).toBe('terminated');
  });
});
