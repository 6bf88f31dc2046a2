export { AwsProvider, ec2UserData, launchOptions } from './aws-provider.js';
export type { AwsMarket, AwsProviderOptions } from './aws-provider.js';
export { TransitRetryStrategy, createEc2Client } from './ec2-client.js';
export type { Ec2ClientSettings } from './ec2-client.js';
export { CAPACITY_CODES, CapacityError, ec2ErrorCode, fromEc2Error } from './errors.js';
