/**
 * Hetzner Cloud API errors as the fake answers them. On the wire every error is
 *
 *   {"error": {"code": "…", "message": "…", "details": …}}
 *
 * with an HTTP status (docs.hetzner.cloud, Overview → Errors: "Errors are indicated by HTTP
 * status codes … the response … contains an error code, an error message, and, optionally,
 * error details"). `invalid_input` carries `details.fields: [{ name, messages }]`,
 * `uniqueness_error` `details.fields: [{ name }]`. The statuses are in STATUS below; README.md
 * says which of them were seen in real answers and which are the fake's choice.
 */

export interface InvalidField {
  name: string;
  messages: string[];
}

export type ErrorDetails = Record<string, unknown> | null;

export class HcloudError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number = statusFor(code),
    readonly details: ErrorDetails = null,
  ) {
    super(message);
    this.name = 'HcloudError';
  }

  /** The answer body, `{ error: { code, message, details } }`. */
  toJSON(): { error: { code: string; message: string; details: ErrorDetails } } {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}

/**
 * The HTTP status for each error code the fake may answer. 412 for `resource_unavailable` and
 * 429 for `rate_limit_exceeded` are as seen on real answers; the rest follow HTTP's meaning of
 * the code (see README.md, "Statuses").
 */
export const STATUS: Readonly<Record<string, number>> = {
  invalid_input: 400,
  json_error: 400,
  unauthorized: 401,
  forbidden: 403,
  token_readonly: 403,
  resource_limit_exceeded: 403,
  not_found: 404,
  conflict: 409,
  uniqueness_error: 409,
  deprecated_api_endpoint: 410,
  resource_unavailable: 412,
  placement_error: 422,
  service_error: 422,
  locked: 423,
  protected: 423,
  rate_limit_exceeded: 429,
  server_error: 500,
  unsupported_error: 501,
  maintenance: 503,
  unavailable: 503,
  timeout: 504,
};

/** The status the fake sends with a code; 500 for a code it does not know. */
export function statusFor(code: string): number {
  return STATUS[code] ?? 500;
}

const DEFAULT_MESSAGES: Readonly<Record<string, string>> = {
  unauthorized: 'unable to authenticate',
  not_found: 'not found',
  rate_limit_exceeded: 'limit of 3600 requests per hour reached',
  resource_unavailable: 'error during placement',
  placement_error: 'error during placement',
  server_error: 'internal server error',
  service_error: 'service error',
  locked: 'server is locked',
  conflict: 'the resource has changed during the request, please retry',
  timeout: 'the request could not be answered in time, please retry',
  maintenance: 'cannot perform operation due to maintenance',
  unavailable: 'service is currently not available',
};

export function defaultMessage(code: string): string {
  return DEFAULT_MESSAGES[code] ?? code.replace(/_/g, ' ');
}

/** `invalid_input` naming every bad field: "invalid input in field 'name'" / "… in fields 'a', 'b'". */
export function invalidInput(fields: InvalidField[], message?: string): HcloudError {
  const names = fields.map((f) => `'${f.name}'`).join(', ');
  const text =
    message ??
    (fields.length === 1 ? `invalid input in field ${names}: ${fields[0]!.messages.join(', ')}` : `invalid input in fields ${names}`);
  return new HcloudError('invalid_input', text, 400, { fields });
}

export const errors = {
  unauthorized: (): HcloudError => new HcloudError('unauthorized', defaultMessage('unauthorized')),
  jsonError: (): HcloudError => new HcloudError('json_error', 'invalid JSON in request body'),
  notFound: (what = 'not found'): HcloudError => new HcloudError('not_found', what),
  rateLimited: (limit: number): HcloudError => new HcloudError('rate_limit_exceeded', `limit of ${limit} requests per hour reached`),
  uniqueness: (field: string, message: string): HcloudError => new HcloudError('uniqueness_error', message, 409, { fields: [{ name: field }] }),
  unavailable: (code: 'resource_unavailable' | 'placement_error'): HcloudError => new HcloudError(code, defaultMessage(code)),
};
