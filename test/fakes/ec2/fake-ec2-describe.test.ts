/**
 * DescribeInstances on the fake through the real SDK: ids, filters, reservations, and paging
 * with the SDK's own paginator.
 */
import {
  DescribeInstancesCommand,
  type DescribeInstancesCommandOutput,
  type EC2Client,
  paginateDescribeInstances,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeEc2 } from './index.js';
import { ec2Client, ManualClock, rejectionOf } from './sdk.js';

const AMI = 'ami-0abcdef1234567890';

let fake: FakeEc2 | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function setup(): Promise<{ fake: FakeEc2; ec2: EC2Client; clock: ManualClock }> {
  const clock = new ManualClock();
  fake = new FakeEc2({ now: clock.now });
  return { fake, ec2: ec2Client(await fake.start(), { maxAttempts: 1 }), clock };
}

async function launchTagged(ec2: EC2Client, count: number, tags: Record<string, string>): Promise<string[]> {
  const out = await ec2.send(
    new RunInstancesCommand({
      ImageId: AMI,
      InstanceType: 't3.micro',
      MinCount: count,
      MaxCount: count,
      TagSpecifications: [{ ResourceType: 'instance', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }],
    }),
  );
  return out.Instances!.map((i) => i.InstanceId!);
}

function idsOf(out: DescribeInstancesCommandOutput): string[] {
  return (out.Reservations ?? []).flatMap((r) => (r.Instances ?? []).map((i) => i.InstanceId!));
}

describe('DescribeInstances', () => {
  it('groups instances by the RunInstances call that launched them', async () => {
    const { ec2 } = await setup();
    const a = await launchTagged(ec2, 2, { g: 'a' });
    const b = await launchTagged(ec2, 1, { g: 'b' });
    const out = await ec2.send(new DescribeInstancesCommand({}));
    expect(out.Reservations!.map((r) => (r.Instances ?? []).map((i) => i.InstanceId))).toEqual([a, b]);
    expect(out.Reservations!.every((r) => /^r-[0-9a-f]{17}$/.test(r.ReservationId!) && r.OwnerId === '123456789012')).toBe(true);
  });

  it('filters by tag:<key>, tag-key, instance-state-name, instance-id and client-token; values of one filter OR, filters AND', async () => {
    const { ec2 } = await setup();
    const web = await launchTagged(ec2, 3, { 'drover:group': 'default/web', 'drover:shard': '0' });
    const worker = await launchTagged(ec2, 2, { 'drover:group': 'default/worker' });
    const other = await launchTagged(ec2, 1, { team: 'x' });
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [web[0]!] }));
    const d = async (Filters: Array<{ Name: string; Values: string[] }>) => idsOf(await ec2.send(new DescribeInstancesCommand({ Filters })));

    expect(await d([{ Name: 'tag:drover:group', Values: ['default/web'] }])).toEqual(web);
    expect(await d([{ Name: 'tag:drover:group', Values: ['default/web', 'default/worker'] }])).toEqual([...web, ...worker]);
    expect(await d([{ Name: 'tag:drover:group', Values: ['default/*'] }, { Name: 'instance-state-name', Values: ['pending', 'running'] }])).toEqual([
      ...web.slice(1),
      ...worker,
    ]);
    expect(await d([{ Name: 'tag-key', Values: ['drover:shard'] }])).toEqual(web);
    expect(await d([{ Name: 'instance-state-name', Values: ['terminated'] }])).toEqual([web[0]]);
    expect(await d([{ Name: 'instance-id', Values: [other[0]!, 'i-0000000000000000a'] }])).toEqual(other);
    const token = (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [worker[1]!] }))).Reservations![0]!.Instances![0]!.ClientToken!;
    expect(await d([{ Name: 'client-token', Values: [token] }])).toEqual(worker);
  });

  it('refuses an unknown filter name with InvalidParameterValue', async () => {
    const { ec2 } = await setup();
    const e = await rejectionOf(() => ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'colour', Values: ['red'] }] })));
    expect(e.name).toBe('InvalidParameterValue');
    expect(e.message).toBe("The filter 'colour' is invalid");
  });

  it('answers InvalidInstanceID.NotFound naming every unknown id, and nothing else, when any id is unknown', async () => {
    const { ec2 } = await setup();
    const [known] = await launchTagged(ec2, 1, {});
    const one = await rejectionOf(() => ec2.send(new DescribeInstancesCommand({ InstanceIds: [known!, 'i-0000000000000000a'] })));
    expect(one.message).toBe("The instance ID 'i-0000000000000000a' does not exist");
    const two = await rejectionOf(() => ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-0000000000000000a', 'i-00000000'] })));
    expect(two.name).toBe('InvalidInstanceID.NotFound');
    expect(two.message).toBe("The instance IDs 'i-0000000000000000a, i-00000000' do not exist");
    const malformed = await rejectionOf(() => ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-XYZ'] })));
    expect(malformed.name).toBe('InvalidInstanceID.Malformed');
  });

  it('refuses MaxResults together with InstanceIds (InvalidParameterCombination) and outside 5..1000 (InvalidParameterValue)', async () => {
    const { ec2 } = await setup();
    const [id] = await launchTagged(ec2, 1, {});
    const both = await rejectionOf(() => ec2.send(new DescribeInstancesCommand({ InstanceIds: [id!], MaxResults: 5 })));
    expect(both.name).toBe('InvalidParameterCombination');
    for (const MaxResults of [4, 1001]) {
      const e = await rejectionOf(() => ec2.send(new DescribeInstancesCommand({ MaxResults })));
      expect(e.name).toBe('InvalidParameterValue');
    }
  });

  it('refuses a NextToken it did not issue, or one issued for other filters, with InvalidParameterValue', async () => {
    const { ec2 } = await setup();
    await launchTagged(ec2, 6, { g: 'a' });
    const first = await ec2.send(new DescribeInstancesCommand({ MaxResults: 5 }));
    expect(first.NextToken).toBeDefined();
    const forged = await rejectionOf(() => ec2.send(new DescribeInstancesCommand({ MaxResults: 5, NextToken: 'not-a-token' })));
    expect(forged.name).toBe('InvalidParameterValue');
    const elsewhere = await rejectionOf(() =>
      ec2.send(new DescribeInstancesCommand({ MaxResults: 5, NextToken: first.NextToken, Filters: [{ Name: 'tag:g', Values: ['a'] }] })),
    );
    expect(elsewhere.name).toBe('InvalidParameterValue');
  });

  it('pages 2,500 instances with the SDK paginator at 1,000 a page: three calls, every instance once, filters applied across pages', async () => {
    const { fake, ec2 } = await setup();
    const web: string[] = [];
    for (let i = 0; i < 125; i++) web.push(...(await launchTagged(ec2, 20, { 'drover:group': i % 5 === 0 ? 'default/worker' : 'default/web' })));
    expect(web).toHaveLength(2_500);
    const before = fake.count('DescribeInstances');

    const seen: string[] = [];
    const pageSizes: number[] = [];
    for await (const page of paginateDescribeInstances({ client: ec2, pageSize: 1000 }, {})) {
      pageSizes.push(idsOf(page).length);
      seen.push(...idsOf(page));
    }
    expect(pageSizes).toEqual([1000, 1000, 500]);
    expect(seen).toEqual(fake.instances().map((i) => i.instanceId));
    expect(fake.count('DescribeInstances') - before).toBe(3);

    const workers: string[] = [];
    for await (const page of paginateDescribeInstances({ client: ec2, pageSize: 1000 }, { Filters: [{ Name: 'tag:drover:group', Values: ['default/worker'] }] })) {
      workers.push(...idsOf(page));
    }
    expect(workers).toHaveLength(500);
    expect(new Set(workers).size).toBe(500);
  });

  it('keeps a page cursor valid while instances come and go between pages', async () => {
    const { ec2 } = await setup();
    const ids = await launchTagged(ec2, 10, {});
    const first = await ec2.send(new DescribeInstancesCommand({ MaxResults: 5 }));
    expect(idsOf(first)).toEqual(ids.slice(0, 5));
    const later = await launchTagged(ec2, 1, {});
    const second = await ec2.send(new DescribeInstancesCommand({ MaxResults: 5, NextToken: first.NextToken }));
    expect(idsOf(second)).toEqual(ids.slice(5, 10));
    const third = await ec2.send(new DescribeInstancesCommand({ MaxResults: 5, NextToken: second.NextToken }));
    expect(idsOf(third)).toEqual(later);
    expect(third.NextToken).toBeUndefined();
  });
});
