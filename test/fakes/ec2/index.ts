/** The fake EC2 Query API and the fake IMDSv2, for tests of the EC2 provider. See README.md. */
export {
  ACTIONS,
  FakeEc2,
  type Capacity,
  type Ec2Action,
  type FakeEc2Options,
  type FakeInstance,
  type FaultSpec,
  type InstanceStateName,
  type LaunchTemplate,
  type LaunchTemplateDefaults,
  type RecordedCall,
} from './fake-ec2.js';
export { STATE_CODES } from './ec2-model.js';
export { Ec2Error, statusFor } from './ec2-errors.js';
export { type BucketSpec, TokenBucket } from './token-bucket.js';
export { FakeImds, type FakeImdsOptions, type ImdsInstance, type ImdsRequest, type SpotAction } from './imds.js';
export { ec2Client, ManualClock, rejectionOf } from './sdk.js';
