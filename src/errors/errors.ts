/**
 * The error catalogue. Every error Drover raises on purpose is a DroverError with a code and a
 * `retryable` flag; messages read "doing X: cause". docs/errors.md lists every code and class
 * (test/errors/catalogue-doc.test.ts keeps the two in step).
 *
 * DroverError subclasses outside this file: IllegalTransitionError (src/store/lifecycle.ts).
 */

/** Every error code, in the order docs/errors.md lists them. */
export const ERROR_CODES = [
  'config',
  'invalid',
  'not_found',
  'conflict',
  'timeout',
  'throttled',
  'not_leader',
  'provider',
  'permanent',
  'unavailable',
  'unauthenticated',
  'forbidden',
  'misdirected',
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * The HTTP status the admin API answers an error of each code with. An answer with status
 * HIDDEN_STATUS (500) never carries the error's message: it says only which request to look
 * for in the server's log (the message may name files, hosts or internals). Every other status
 * is a deliberate refusal and carries the message.
 */
export const HTTP_STATUS: { readonly [C in ErrorCode]: number } = {
  config: 400,
  invalid: 400,
  not_found: 404,
  conflict: 409,
  timeout: 500,
  throttled: 500,
  not_leader: 503,
  provider: 500,
  permanent: 500,
  unavailable: 503,
  unauthenticated: 401,
  forbidden: 403,
  misdirected: 421,
  internal: 500,
};

/** The status whose answers never echo the error's message. */
export const HIDDEN_STATUS = 500;

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

/** One problem in a config: where it is (a dotted path, '' for the whole document) and what is wrong. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/**
 * A config document that cannot be used (the server's YAML, the API tokens, the agent's
 * config). `issues` lists every problem found, each with its path; the message joins them:
 * "invalid config: groups.default.web.size: must be >= 0". Not retryable: the same document
 * gives the same answer.
 */
export class ConfigError extends DroverError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], source = 'config', cause?: unknown) {
    const lines = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
    super(`invalid ${source}: ${lines.join('; ')}`, { code: 'config', retryable: false, cause });
    this.issues = issues;
  }
}

/**
 * A setting whose value cannot be used as given, found when it is put to use (at start, or when
 * the files it names are re-read): a file it names is missing, unreadable or does not hold what
 * it should, settings that go together do not, or the machine lacks what it needs. The message
 * names the setting: "reading server.tls.cert /etc/drover/tls.crt: ENOENT: ...". Not
 * retryable: the setting or the file must be fixed.
 */
export class SettingError extends DroverError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'config', retryable: false, cause });
  }
}

/**
 * Drover broke one of its own rules: a caller used an object against its contract (started it
 * twice, passed an option out of range). A bug, never retried; the API answers it 500 without
 * the message.
 */
export class InternalError extends DroverError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'internal', retryable: false, cause });
  }
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

/**
 * An action the current state of its object does not allow (acknowledging a drain that is not
 * running, loading from a store that was closed). Not retryable as it is: the state must change first.
 */
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

/**
 * Something is busy or not there yet (a stream full of clients, a server starting, an address
 * in use, an etcd stream that ended). Retryable.
 */
export class UnavailableError extends DroverError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'unavailable', retryable: true, cause });
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

/**
 * Whether the provider throttled the call behind `err`: a ThrottledError, or an error that wraps
 * one (callers add context: "creating instance i-1 in a/web: RunInstances: throttled ...").
 */
export function isThrottled(err: unknown): boolean {
  let current: unknown = err;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    if (current instanceof ThrottledError) return true;
    current = current.cause;
  }
  return false;
}
