/**
 * The error catalogue. Every error Drover raises on purpose is a DroverError with a code and a
 * `retryable` flag; messages read "doing X: cause".
 */
export type ErrorCode =
  | 'config'
  | 'invalid'
  | 'not_found'
  | 'conflict'
  | 'timeout'
  | 'throttled'
  | 'not_leader'
  | 'provider'
  | 'permanent'
  | 'unavailable'
  | 'unauthenticated'
  | 'forbidden'
  | 'misdirected';

export interface DroverErrorOptions {
  code: ErrorCode;
  retryable: boolean;
  cause?: unknown;
}

export class DroverError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(message: string, options: DroverErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.retryable = options.retryable;
  }
}

/** Text of any thrown value. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'string') return err;
  try {
    return JSON.stringify(err);
  } catch {
    return String(err);
  }
}

/** Builds "doing X: cause" from an action and whatever was thrown. */
export function doing(action: string, cause: unknown): string {
  return `${action}: ${errorMessage(cause)}`;
}

/**
 * Wraps an error to say it must not be retried (the seed's PermanentError). `cause` holds the
 * wrapped error; the message is the wrapped error's message.
 */
export class PermanentError extends DroverError {
  constructor(cause: unknown) {
    super(errorMessage(cause), { code: 'permanent', retryable: false, cause });
  }

  /** The wrapped error, as `errors.Unwrap` gives it in the seed. */
  unwrap(): unknown {
    return this.cause;
  }
}

/** Wraps `err` as non-retryable. A PermanentError is returned as it is. */
export function newPermanentError(err: unknown): PermanentError {
  return err instanceof PermanentError ? err : new PermanentError(err);
}

/** The provider has no such instance. Not retryable: asking again gives the same answer. */
export class InstanceNotFoundError extends DroverError {
  readonly providerId: string;

  constructor(providerId: string, cause?: unknown) {
    super(`instance ${providerId} not found`, { code: 'not_found', retryable: false, cause });
    this.providerId = providerId;
  }
}

/** A call did not answer in time. Retryable: the next attempt may be faster. */
export class TimeoutError extends DroverError {
  constructor(action: string, ms: number) {
    super(`${action}: timed out after ${ms} ms`, { code: 'timeout', retryable: true });
  }
}

/** The provider refused a call because of its rate limit. Retryable after a pause. */
export class ThrottledError extends DroverError {
  constructor(action: string) {
    super(`${action}: throttled by the provider`, { code: 'throttled', retryable: true });
  }
}

/** A mutation was refused because this server is not (or no longer) the shard leader. */
export class NotLeaderError extends DroverError {
  constructor(action: string) {
    super(`${action}: this server is not the shard leader`, { code: 'not_leader', retryable: false });
  }
}

/** A request that cannot succeed as asked (bad input). */
export class InvalidRequestError extends DroverError {
  constructor(message: string) {
    super(message, { code: 'invalid', retryable: false });
  }
}

/** A request that conflicts with the current state (e.g. acknowledging a drain that is not running). */
export class ConflictError extends DroverError {
  constructor(message: string) {
    super(message, { code: 'conflict', retryable: false });
  }
}

/** A provider call failed (the cloud's API, a local process). Retryable unless said otherwise. */
export class ProviderError extends DroverError {
  constructor(message: string, options: { retryable: boolean; cause?: unknown } = { retryable: true }) {
    super(message, { code: 'provider', retryable: options.retryable, cause: options.cause });
  }
}

/** Something is busy or not there yet (a stream full of clients, a server starting). Retryable. */
export class UnavailableError extends DroverError {
  constructor(message: string) {
    super(message, { code: 'unavailable', retryable: true });
  }
}

/** Drover has no such instance (as opposed to InstanceNotFoundError: the provider has none). */
export class InstanceUnknownError extends DroverError {
  constructor(instanceId: string) {
    super(`instance ${instanceId} not found`, { code: 'not_found', retryable: false });
  }
}

/** A request names a group, instance or page that does not exist (or that its caller may not see). */
export class NotFoundError extends DroverError {
  constructor(message: string) {
    super(message, { code: 'not_found', retryable: false });
  }
}

/** A request without a valid credential (HTTP 401). */
export class UnauthenticatedError extends DroverError {
  constructor(message = 'missing or wrong bearer token') {
    super(message, { code: 'unauthenticated', retryable: false });
  }
}

/** A request whose credential does not allow what it asks (HTTP 403). */
export class ForbiddenError extends DroverError {
  constructor(message: string) {
    super(message, { code: 'forbidden', retryable: false });
  }
}

/** A request addressed to a name this server does not answer to (HTTP 421; DNS rebinding). */
export class MisdirectedRequestError extends DroverError {
  constructor(message: string) {
    super(message, { code: 'misdirected', retryable: false });
  }
}

/**
 * Whether an error is worth retrying. PermanentError and DroverErrors marked non-retryable are
 * not; errors of unknown origin are assumed transient.
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof DroverError) return err.retryable;
  return true;
}
