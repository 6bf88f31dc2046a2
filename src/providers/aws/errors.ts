/**
 * EC2's error codes, read into Drover's catalogue. EC2 answers a refused call with a code
 * (`<Error><Code>…`), which the SDK gives as the exception's `name`; the codes and their meaning
 * are in the EC2 API reference, "Error codes for the Amazon EC2 API".
 *
 * - Throttles (`RequestLimitExceeded`, ...) → ThrottledError: the call gate slows down and retries.
 * - No capacity (`InsufficientInstanceCapacity`, ...) → CapacityError: the provider tries the next
 *   instance type, subnet or market; when none is left it is a retryable ProviderError.
 * - `InvalidInstanceID.NotFound` → InstanceNotFoundError (the provider decides whether its grace
 *   window turns it into a retry).
 * - Refusals a retry cannot change (bad AMI, bad parameter, no permission, a client token reused
 *   with other parameters...) → PermanentError, with what to fix.
 * - Anything else the server faulted, or a network failure → retryable ProviderError.
 */
import { InstanceNotFoundError, PermanentError, ProviderError, ThrottledError, errorMessage } from '../../errors/index.js';

/** The fields of an SDK service exception this module reads. */
interface SdkErrorShape {
  name?: unknown;
  message?: unknown;
  $fault?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

/** EC2's throttling codes (RequestLimitExceeded is the Query API's; the others appear on some actions). */
const THROTTLE_CODES = new Set(['RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'RequestThrottled', 'ResourceLimitExceeded']);

/** No room for this type, market or zone now; another one may have it. */
export const CAPACITY_CODES = new Set(['InsufficientInstanceCapacity', 'InsufficientHostCapacity', 'InsufficientReservedInstanceCapacity', 'InsufficientCapacity', 'SpotMaxPriceTooLow', 'MaxSpotInstanceCountExceeded', 'Unsupported']);

/** Codes whose answer a retry cannot change, with the fix the operator must make. */
const PERMANENT_HINTS: Record<string, string> = {
  IdempotentParameterMismatch: 'a client token was reused with other parameters',
  InvalidParameterValue: 'check the template\'s values',
  InvalidParameterCombination: 'check the template: these settings do not go together',
  InvalidParameter: 'check the template\'s values',
  MissingParameter: 'the template lacks a required setting',
  UnauthorizedOperation: 'the IAM role or user Drover runs as lacks this permission (see the README\'s IAM policy)',
  AuthFailure: 'the AWS credentials were refused',
  OptInRequired: 'the account is not subscribed to this service or region',
  'InvalidAMIID.NotFound': 'check templates.*.imageId: the AMI does not exist in this region or account',
  'InvalidAMIID.Malformed': 'check templates.*.imageId',
  'InvalidAMIID.Unavailable': 'the AMI is deregistered or not available',
  'InvalidSubnetID.NotFound': 'check templates.*.subnetIds',
  'InvalidSubnetID.Malformed': 'check templates.*.subnetIds',
  'InvalidGroup.NotFound': 'check templates.*.securityGroupIds',
  'InvalidGroupId.Malformed': 'check templates.*.securityGroupIds',
  'InvalidKeyPair.NotFound': 'check templates.*.keyName',
  'InvalidLaunchTemplateName.NotFoundException': 'check templates.*.launchTemplate',
  'InvalidLaunchTemplateId.NotFound': 'check templates.*.launchTemplate',
  'InvalidLaunchTemplateId.VersionNotFound': 'check templates.*.launchTemplate.version',
  InvalidUserData: 'check templates.*.userData',
  'InvalidUserData.Malformed': 'check templates.*.userData',
  VcpuLimitExceeded: 'raise the account\'s vCPU quota for this instance family (Service Quotas)',
  InstanceLimitExceeded: 'raise the account\'s instance quota',
  TagLimitExceeded: 'an instance carries at most 50 tags: check templates.*.tags',
  InvalidInstanceType: 'check templates.*.instanceTypes',
  'InvalidInstanceID.Malformed': 'the provider id is not an EC2 instance id',
  UnsupportedOperation: 'the instance type, AMI or settings do not support this',
  'InvalidIAMInstanceProfile.NotFound': 'check templates.*.iamInstanceProfile',
  'InvalidParameterValue.IamInstanceProfile': 'check templates.*.iamInstanceProfile',
};

/** The EC2 error code of an SDK error ('' when it is not one: a network failure, a timeout). */
export function ec2ErrorCode(err: unknown): string {
  const shape = err as SdkErrorShape | null;
  return typeof shape?.name === 'string' && shape.$metadata !== undefined ? shape.name : '';
}

/** A launch with these parameters found no capacity; the provider tries others. */
export class CapacityError extends ProviderError {
  readonly ec2Code: string;
  constructor(message: string, ec2Code: string, cause: unknown) {
    super(message, { retryable: true, cause });
    this.ec2Code = ec2Code;
  }
}

/**
 * Drover's error for an SDK error of `action` ("RunInstances for i-1"). `providerId` names the
 * instance for a NotFound answer.
 */
export function fromEc2Error(action: string, err: unknown, providerId?: string): Error {
  const code = ec2ErrorCode(err);
  const shape = err as SdkErrorShape | null;
  const status = typeof shape?.$metadata?.httpStatusCode === 'number' ? shape.$metadata.httpStatusCode : undefined;
  const text = `${action}: ${code ? `${code}: ` : ''}${errorMessage(err)}`;
  if (THROTTLE_CODES.has(code) || status === 429) return new ThrottledError(`${action} (${code || `HTTP ${String(status)}`})`);
  if (CAPACITY_CODES.has(code)) return new CapacityError(text, code, err);
  if (code === 'InvalidInstanceID.NotFound' && providerId) return new InstanceNotFoundError(providerId, err);
  const hint = PERMANENT_HINTS[code];
  if (hint) return new PermanentError(new ProviderError(`${text} (${hint})`, { retryable: false, cause: err }));
  if (code && shape?.$fault === 'client') {
    // An unknown refusal of the request itself: repeating it gives the same answer.
    return new PermanentError(new ProviderError(text, { retryable: false, cause: err }));
  }
  return new ProviderError(text, { retryable: true, cause: err });
}
