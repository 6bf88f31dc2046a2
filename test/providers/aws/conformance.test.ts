/**
 * The EC2 provider against the shared Provider contract (test/providers/conformance/suite.ts),
 * through the real SDK and the fake EC2 Query API: instances pending for a while, then running,
 * on a manual clock that `settle` advances; faults injected as EC2 answers them (throttle 503,
 * server fault 500 that the SDK retries once here, a refusal).
 */
import { ManualClock } from '../../../src/clock/index.js';
import { AwsProvider, createEc2Client } from '../../../src/providers/aws/index.js';
import { FakeEc2 } from '../../fakes/ec2/index.js';
import { describeProviderConformance, type InjectedFault, type ProviderOperation } from '../conformance/suite.js';

/** The EC2 actions behind each provider operation. */
const ACTIONS: Record<ProviderOperation, string> = { create: 'RunInstances', delete: 'TerminateInstances', status: 'DescribeInstances', list: 'DescribeInstances', setTags: 'CreateTags' };

process.env.AWS_ACCESS_KEY_ID ??= 'AKIDFAKEFAKEFAKEFAKE';
process.env.AWS_SECRET_ACCESS_KEY ??= 'fake-secret-fake-secret';

describeProviderConformance('aws (fake EC2)', async () => {
  const clock = new ManualClock(new Date(Date.UTC(2030, 0, 1)));
  const fake = new FakeEc2({ now: () => clock.nowMs(), pendingMs: 2_000 });
  const endpoint = await fake.start();
  // maxAttempts 1: an injected server fault reaches the provider (a real client retries it).
  const provider = new AwsProvider({ client: createEc2Client({ region: 'eu-central-1', endpoint, maxAttempts: 1, requestTimeoutMs: 10_000 }), clock, notFoundGraceMs: 30_000 });
  const faults: Record<InjectedFault, (op: ProviderOperation) => void> = {
    throttled: (op) => fake.failNext(ACTIONS[op], { code: 'RequestLimitExceeded', message: 'Request limit exceeded.', status: 503 }),
    transient: (op) => fake.failNext(ACTIONS[op], { code: 'InternalError', message: 'An internal error has occurred', status: 500 }),
    permanent: (op) => fake.failNext(ACTIONS[op], { code: 'UnauthorizedOperation', message: 'You are not authorized to perform this operation.', status: 403 }),
  };
  return {
    provider,
    template: { imageId: 'ami-0123456789abcdef0', instanceTypes: ['m7i.large'] },
    invalidTemplate: { instanceTypes: ['m7i.large'] },
    settle: () => clock.advance(1_000),
    close: async () => {
      provider.close();
      await fake.close();
    },
    limits: { maxTagValueLength: 256 },
    // EC2 ids have 8 or 17 hex digits; another length is Malformed (a permanent error), not NotFound.
    unknownProviderId: 'i-0fffffffffffffff0',
    faults,
  };
});
