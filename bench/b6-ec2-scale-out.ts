/**
 * B6 EC2 scale-out: one group 0 → 1000 through the EC2 provider and the real AWS SDK, against
 * the fake EC2 Query API on loopback (test/fakes/ec2) with a RunInstances token bucket of burst
 * 50 refilling 10/s, as EC2 limits each action. Drover is given no rate limit of its own
 * (`maxCallsPerSecond: 0`): the call gate's adaptive rate must find the bucket's.
 *
 * Time runs from the config change that asks for 1000 until the 1000th RunInstances succeeded.
 * The floor is the bucket's: the burst at once, then (1000 − 50) / 10 s. Also counted: instances
 * per client token (duplicates must be 0) and the calls the fake throttled, as a share of all
 * calls (target < 5 %).
 */
import { SystemClock } from '../src/index.js';
import { AwsProvider, createEc2Client } from '../src/providers/aws/index.js';
import { FakeEc2 } from '../test/fakes/ec2/index.js';
import { buildEnv, loopDelay, now, round, shardConfig, sleep } from './common.js';

export const B6_SIZE = 1000;
export const B6_BURST = 50;
export const B6_REFILL_PER_SECOND = 10;
const TENANT = 'bench';
const GROUP = 'scale';
const TEMPLATES = { web: { imageId: 'ami-0123456789abcdef0', instanceTypes: ['m7i.large'], subnetIds: ['subnet-0a0a0a0a', 'subnet-0b0b0b0b'] } };

export interface B6Result {
  seconds: number;
  floorSeconds: number;
  ratio: number;
  instances: number;
  duplicates: number;
  calls: number;
  throttled: number;
  throttledShare: number;
  runInstancesCalls: number;
  loopDelayP99Ms: number;
  errors: number;
}

function config(size: number): Record<string, unknown> {
  return {
    shard: shardConfig(),
    templates: TEMPLATES,
    groups: { [TENANT]: { [GROUP]: { size, template: 'web' } } },
    provider: { kind: 'aws', region: 'eu-central-1', maxCallsPerSecond: 0, adaptiveRate: true },
  };
}

export async function runB6(): Promise<B6Result> {
  const fake = new FakeEc2({ pendingMs: 5_000 });
  const endpoint = await fake.start();
  fake.setBucket('RunInstances', { burst: B6_BURST, refillPerSecond: B6_REFILL_PER_SECOND });
  process.env.AWS_ACCESS_KEY_ID ??= 'AKIDBENCHBENCHBENCH0';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'bench-secret';
  const client = createEc2Client({ region: 'eu-central-1', endpoint, maxAttempts: 3, requestTimeoutMs: 30_000 });
  let provider: AwsProvider | undefined;
  const env = buildEnv<AwsProvider>({
    config: config(0),
    provider: (provider = new AwsProvider({ client, clock: new SystemClock(), notFoundGraceMs: 120_000 })),
  });
  try {
    await env.reconciler.start();
    await env.reconciler.idle();
    const callsBefore = fake.calls.length;
    const delay = loopDelay();
    const startedAt = now();
    env.loader.update(config(B6_SIZE));
    const deadline = startedAt + 300_000;
    while (fake.count('RunInstances', { error: false }) < B6_SIZE && now() < deadline) await sleep(20);
    const seconds = (now() - startedAt) / 1000;
    const lag = delay.stop();
    const launched = fake.count('RunInstances', { error: false });
    if (launched < B6_SIZE) throw new Error(`B6: only ${launched} of ${B6_SIZE} launches within 300 s`);
    const calls = fake.calls.slice(callsBefore);
    const throttled = calls.filter((c) => c.error === 'RequestLimitExceeded').length;
    // Drover launches every instance with its id as ClientToken: more instances than tokens are duplicates.
    const tokens = new Set(fake.instances().map((i) => i.clientToken));
    const floorSeconds = (B6_SIZE - B6_BURST) / B6_REFILL_PER_SECOND;
    return {
      seconds: round(seconds, 2),
      floorSeconds,
      ratio: round(seconds / floorSeconds, 3),
      instances: fake.instances().length,
      duplicates: fake.instances().length - tokens.size,
      calls: calls.length,
      throttled,
      throttledShare: round(throttled / Math.max(1, calls.length), 4),
      runInstancesCalls: calls.filter((c) => c.action === 'RunInstances').length,
      loopDelayP99Ms: lag.p99Ms,
      errors: env.errors.length,
    };
  } finally {
    await env.close();
    provider?.close();
    await fake.close();
  }
}
