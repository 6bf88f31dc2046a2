/**
 * EC2 errors as the fake answers them. On the wire EC2 sends every error as
 *
 *   <Response><Errors><Error><Code>…</Code><Message>…</Message></Error></Errors><RequestID>…</RequestID></Response>
 *
 * with HTTP 400 for client errors and 5xx for server errors; the SDK's ec2Query protocol reads
 * `Code` and throws an exception whose `name` is that code and whose `$metadata.httpStatusCode`
 * is the status. The statuses below are those EC2 is documented or observed to send (see
 * README.md): a client error is 400, `InsufficientInstanceCapacity` and `InternalError` 500,
 * `RequestLimitExceeded` and `Unavailable` 503.
 */

export class Ec2Error extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number = statusFor(code),
  ) {
    super(message);
    this.name = code;
  }
}

const SERVER_STATUS: Record<string, number> = {
  InsufficientInstanceCapacity: 500,
  InsufficientCapacity: 500,
  InternalError: 500,
  RequestLimitExceeded: 503,
  Unavailable: 503,
  ServiceUnavailable: 503,
};

/** The HTTP status EC2 sends with an error code: 5xx for its server errors, 400 otherwise. */
export function statusFor(code: string): number {
  return SERVER_STATUS[code] ?? 400;
}

const DEFAULT_MESSAGES: Record<string, string> = {
  RequestLimitExceeded: 'Request limit exceeded.',
  InsufficientInstanceCapacity: 'There is no capacity available that matches your request.',
  InternalError: 'An internal error has occurred.',
  Unavailable: 'The server is overloaded and can\u2019t handle the request.',
  IdempotentParameterMismatch: 'Arguments on this idempotent request are inconsistent with arguments used in previous request(s).',
};

/** The message EC2 gives with a code when the caller gave none (used by `failNext`). */
export function defaultMessage(code: string): string {
  return DEFAULT_MESSAGES[code] ?? `${code} (injected by the fake)`;
}

export const errors = {
  invalidAction: (action: string) => new Ec2Error('InvalidAction', `The action ${action} is not valid for this web service.`),
  missingAction: () => new Ec2Error('MissingAction', 'The request must contain the parameter Action'),
  missingParameter: (name: string) => new Ec2Error('MissingParameter', `The request must contain the parameter ${name}`),
  invalidParameterValue: (message: string) => new Ec2Error('InvalidParameterValue', message),
  invalidParameterCombination: (message: string) => new Ec2Error('InvalidParameterCombination', message),
  idempotentMismatch: () => new Ec2Error('IdempotentParameterMismatch', DEFAULT_MESSAGES.IdempotentParameterMismatch!),
  instanceNotFound: (ids: readonly string[]) =>
    new Ec2Error(
      'InvalidInstanceID.NotFound',
      ids.length === 1 ? `The instance ID '${ids[0]}' does not exist` : `The instance IDs '${ids.join(', ')}' do not exist`,
    ),
  instanceMalformed: (id: string) => new Ec2Error('InvalidInstanceID.Malformed', `Invalid id: "${id}" (expecting "i-...")`),
  invalidId: (id: string) => new Ec2Error('InvalidID', `The ID '${id}' is not valid`),
  amiMalformed: (id: string) => new Ec2Error('InvalidAMIID.Malformed', `Invalid id: "${id}" (expecting "ami-...")`),
  amiNotFound: (id: string) => new Ec2Error('InvalidAMIID.NotFound', `The image id '[${id}]' does not exist`),
  subnetNotFound: (id: string) => new Ec2Error('InvalidSubnetID.NotFound', `The subnet ID '${id}' does not exist`),
  launchTemplateNameNotFound: (name: string) =>
    new Ec2Error('InvalidLaunchTemplateName.NotFoundException', `The specified launch template, with template name ${name}, does not exist.`),
  launchTemplateIdNotFound: (id: string) =>
    new Ec2Error('InvalidLaunchTemplateId.NotFound', `The specified launch template, with template ID ${id}, does not exist.`),
  tagLimitExceeded: (id: string) => new Ec2Error('TagLimitExceeded', `The maximum number of Tags for a resource has been reached. (resource ${id})`),
  instanceLimitExceeded: (requested: number, limit: number) =>
    new Ec2Error(
      'InstanceLimitExceeded',
      `You have requested more instances (${requested}) than your current instance limit of ${limit} allows for the specified instance type.`,
    ),
  insufficientCapacity: (instanceType: string, az: string) =>
    new Ec2Error(
      'InsufficientInstanceCapacity',
      `We currently do not have sufficient ${instanceType} capacity in the Availability Zone you requested (${az}). Our system will be working on provisioning additional capacity.`,
    ),
  insufficientSpotCapacity: () => new Ec2Error('InsufficientInstanceCapacity', 'There is no Spot capacity available that matches your request.'),
  requestLimitExceeded: () => new Ec2Error('RequestLimitExceeded', DEFAULT_MESSAGES.RequestLimitExceeded!),
};
