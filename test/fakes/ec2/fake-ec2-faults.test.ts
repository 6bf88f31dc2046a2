/**
 * The fake EC2's failure controls through the real SDK: throttling buckets on the injected
 * clock, injected faults, the call log, and latency that blocks no one.
 */
import { CreateTagsCommand, DescribeInstancesCommand, type EC2Client, RunInstancesCommand, type RunInstancesCommandInput } from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeEc2, type FakeEc2Options, TokenBucket } from './index.js';
import { ec2Client, ManualClock, rejectionOf } from './sdk.js';

const launch: RunInstancesCommandInput = { ImageId: 'ami-0abcdef1234567890', InstanceType: 't3.micro', MinCount: 1, MaxCount: 1 };

let fake: FakeEc2 | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function setup(options: FakeEc2Options = {}, maxAttempts = 1): Promise<{ fake: FakeEc2; ec2: EC2Client; clock: ManualClock }> {
  const clock = new ManualClock();
  fake = new FakeEc2({ now: clock.now, ...options });
  return { fake, ec2: ec2Client(await fake.start(), { maxAttempts }), clock };
}

describe('TokenBucket', () => {
  it('starts full, refuses when empty without taking, and refills at its rate up to its burst', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ burst: 2, refillPerSecond: 0.5 }, clock.now);
    expect([bucket.tryTake(), bucket.tryTake(), bucket.tryTake()]).toEqual([true, true, false]);
    clock.advance(1_999);
    expect(bucket.tryTake()).toBe(false);
    expect(bucket.tokens()).toBeCloseTo(0.9995, 6);
    clock.advance(1);
    expect(bucket.tryTake()).toBe(true);
    clock.advance(3_600_000);
    expect(bucket.tokens()).toBe(2);
  });

  it('refuses a burst below 1 or a negative rate', () => {
    const now = () => 0;
    expect(() => new TokenBucket({ burst: 0, refillPerSecond: 1 }, now)).toThrow(RangeError);
    expect(() => new TokenBucket({ burst: 1, refillPerSecond: -1 }, now)).toThrow(RangeError);
  });
});

describe('throttling', () => {
  it('answers RequestLimitExceeded (HTTP 503) once an action’s bucket is empty, and serves again as it refills', async () => {
    const { fake, ec2, clock } = await setup();
    fake.setBucket('DescribeInstances', { burst: 3, refillPerSecond: 1 });
    for (let i = 0; i < 3; i++) await ec2.send(new DescribeInstancesCommand({}));
    const e = await rejectionOf(() => ec2.send(new DescribeInstancesCommand({})));
    expect(e.name).toBe('RequestLimitExceeded');
    expect(e.message).toBe('Request limit exceeded.');
    expect(e.$metadata?.httpStatusCode).toBe(503);

    // Refused requests took nothing: one second later exactly one more is served.
    for (let i = 0; i < 5; i++) await expect(ec2.send(new DescribeInstancesCommand({}))).rejects.toThrow('Request limit exceeded.');
    clock.advance(1_000);
    await ec2.send(new DescribeInstancesCommand({}));
    await expect(ec2.send(new DescribeInstancesCommand({}))).rejects.toThrow('Request limit exceeded.');
    expect(fake.count('DescribeInstances', { error: 'RequestLimitExceeded' })).toBe(7);
    expect(fake.count('DescribeInstances', { error: false })).toBe(4);
  });

  it('gives RunInstances its own bucket: throttled launches leave DescribeInstances and CreateTags alone', async () => {
    const { fake, ec2 } = await setup();
    fake.setBucket('RunInstances', { burst: 1, refillPerSecond: 0 });
    const id = (await ec2.send(new RunInstancesCommand(launch))).Instances![0]!.InstanceId!;
    expect((await rejectionOf(() => ec2.send(new RunInstancesCommand(launch)))).name).toBe('RequestLimitExceeded');
    await ec2.send(new DescribeInstancesCommand({}));
    await ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: 'k', Value: 'v' }] }));
    expect(fake.instances()).toHaveLength(1);
    fake.setBucket('RunInstances', null);
    await ec2.send(new RunInstancesCommand(launch));
    expect(fake.instances()).toHaveLength(2);
  });

  it('is retried by the SDK as a throttling error', async () => {
    const { fake, ec2 } = await setup({}, 2);
    fake.setBucket('DescribeInstances', { burst: 1, refillPerSecond: 0 });
    await ec2.send(new DescribeInstancesCommand({}));
    const e = await rejectionOf(() => ec2.send(new DescribeInstancesCommand({})));
    expect(e.name).toBe('RequestLimitExceeded');
    expect(fake.count('DescribeInstances', { error: 'RequestLimitExceeded' })).toBe(2);
  });
});

describe('failNext', () => {
  it('answers the next N calls of the action with the error before doing anything, then behaves again', async () => {
    const { fake, ec2 } = await setup();
    fake.setBucket('RunInstances', { burst: 1, refillPerSecond: 0 });
    fake.failNext('RunInstances', { code: 'Unsupported', message: 'The requested configuration is currently not supported.', count: 2 });
    for (let i = 0; i < 2; i++) {
      const e = await rejectionOf(() => ec2.send(new RunInstancesCommand(launch)));
      expect(e.name).toBe('Unsupported');
      expect(e.message).toBe('The requested configuration is currently not supported.');
      expect(e.$metadata?.httpStatusCode).toBe(400);
    }
    expect(fake.instances()).toEqual([]);
    // The failed calls took no token from the bucket: the launch after them is served.
    await ec2.send(new RunInstancesCommand(launch));
    expect(fake.instances()).toHaveLength(1);
    expect(fake.calls.map((c) => c.error)).toEqual(['Unsupported', 'Unsupported', undefined]);
  });

  it('sends server errors with EC2’s 5xx status by default, or the status given, and the SDK retries the 5xx ones', async () => {
    const { fake, ec2 } = await setup({}, 3);
    fake.failNext('RunInstances', { code: 'InternalError' });
    const out = await ec2.send(new RunInstancesCommand(launch));
    expect(out.$metadata.attempts).toBe(2);
    expect(fake.calls.map((c) => c.error)).toEqual(['InternalError', undefined]);

    fake.failNext('DescribeInstances', { code: 'InsufficientInstanceCapacity', status: 400, count: 3 });
    const e = await rejectionOf(() => ec2.send(new DescribeInstancesCommand({})));
    expect(e.name).toBe('InsufficientInstanceCapacity');
    expect(e.$metadata?.httpStatusCode).toBe(400);
    expect(fake.count('DescribeInstances')).toBe(1); // a 400 is not retried
  });

  it('queues faults of one action in the order given', async () => {
    const { fake, ec2 } = await setup();
    fake.failNext('DescribeInstances', { code: 'InternalError' });
    fake.failNext('DescribeInstances', { code: 'RequestLimitExceeded' });
    expect((await rejectionOf(() => ec2.send(new DescribeInstancesCommand({})))).$metadata?.httpStatusCode).toBe(500);
    expect((await rejectionOf(() => ec2.send(new DescribeInstancesCommand({})))).name).toBe('RequestLimitExceeded');
    await ec2.send(new DescribeInstancesCommand({}));
  });
});

describe('the call log', () => {
  it('records every call with its action, the clock, its parameters as sent and its error', async () => {
    const { fake, ec2, clock } = await setup();
    await ec2.send(new RunInstancesCommand({ ...launch, ClientToken: 'tok-1' }));
    clock.advance(5);
    await rejectionOf(() => ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-0000000000000000a'] })));
    expect(fake.calls).toEqual([
      { action: 'RunInstances', at: clock.now() - 5, params: { ImageId: launch.ImageId, InstanceType: 't3.micro', MinCount: '1', MaxCount: '1', ClientToken: 'tok-1' } },
      { action: 'DescribeInstances', at: clock.now(), error: 'InvalidInstanceID.NotFound', params: { 'InstanceId.1': 'i-0000000000000000a' } },
    ]);
    expect(fake.count('DescribeInstances', { error: true })).toBe(1);
    expect(fake.count('RunInstances')).toBe(1);
  });
});

describe('responseDelayMs', () => {
  it('delays the answers of one action without holding up other requests', async () => {
    const { fake, ec2 } = await setup({ responseDelayMs: (action) => (action === 'RunInstances' ? 600_000 : 0) });
    const abort = new AbortController();
    const slow = ec2.send(new RunInstancesCommand(launch), { abortSignal: abort.signal });
    const settled = slow.then(
      () => 'resolved',
      () => 'rejected',
    );
    // The launch is done on arrival; only its answer waits. Meanwhile other calls are answered.
    let seen: string[] = [];
    while (seen.length === 0) seen = ((await ec2.send(new DescribeInstancesCommand({}))).Reservations ?? []).flatMap((r) => r.Instances!.map((i) => i.InstanceId!));
    expect(seen).toEqual(fake.instances().map((i) => i.instanceId));
    abort.abort();
    expect(await settled).toBe('rejected');
  });
});
