/**
 * The EC2 client Drover uses: the AWS SDK v3's, with its standard credential chain and region
 * resolution, and a retry strategy of Drover's own.
 *
 * Why not the SDK's retries as they are: they retry throttles too, with their own backoff, so a
 * throttle storm is hidden from Drover's call gate (which slows the whole provider down, adaptive
 * rate) and multiplies the requests that hit the limit. Here the SDK retries only what failed in
 * transit or with a server fault (safe for every call Drover makes: RunInstances carries a
 * ClientToken, the others are idempotent), with full-jitter exponential backoff; throttles and
 * client errors go straight back to Drover.
 */
import { EC2Client, type EC2ClientConfig } from '@aws-sdk/client-ec2';

/** The parts of the SDK's retry interfaces (RetryStrategyV2, RetryToken) this strategy uses. */
interface RetryToken {
  getRetryCount(): number;
  getRetryDelay(): number;
}
interface RetryErrorInfo {
  errorType: 'TRANSIENT' | 'THROTTLING' | 'SERVER_ERROR' | 'CLIENT_ERROR';
  error?: { name?: string };
}

const BASE_DELAY_MS = 100;
const MAX_DELAY_MS = 5_000;
/** Server faults that are answers, not accidents: the provider handles them (capacity fallback). */
const NOT_RETRIED = new Set(['InsufficientInstanceCapacity', 'InsufficientHostCapacity', 'InsufficientCapacity']);

function token(retryCount: number, delayMs: number): RetryToken {
  return { getRetryCount: () => retryCount, getRetryDelay: () => delayMs };
}

/** Retries transient and server errors (not throttles, not capacity) up to `maxAttempts` in all. */
export class TransitRetryStrategy {
  readonly mode = 'drover-transit';

  constructor(
    private readonly maxAttempts: number,
    private readonly random: () => number = Math.random,
  ) {}

  acquireInitialRetryToken(): Promise<RetryToken> {
    return Promise.resolve(token(0, 0));
  }

  refreshRetryTokenForRetry(previous: RetryToken, info: RetryErrorInfo): Promise<RetryToken> {
    const retries = previous.getRetryCount() + 1;
    const retriable = (info.errorType === 'TRANSIENT' || info.errorType === 'SERVER_ERROR') && !NOT_RETRIED.has(info.error?.name ?? '');
    // The SDK rethrows the call's own error when this rejects; the message is for its debug log.
    if (!retriable || retries >= this.maxAttempts) return Promise.reject(new Error('no retry'));
    const cap = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (retries - 1));
    return Promise.resolve(token(retries, Math.floor(this.random() * cap)));
  }

  recordSuccess(): void {}
}

export interface Ec2ClientSettings {
  region?: string;
  endpoint?: string;
  /** Attempts per call for transit and server failures (1 = no retry). */
  maxAttempts: number;
  /** How long one HTTP request may take. */
  requestTimeoutMs: number;
}

export function createEc2Client(settings: Ec2ClientSettings): EC2Client {
  const config: EC2ClientConfig = {
    // Region and endpoint, when not given, come from the SDK's own chain (AWS_REGION, the shared
    // config file; AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL), as for every AWS tool.
    ...(settings.region ? { region: settings.region } : {}),
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    retryStrategy: new TransitRetryStrategy(settings.maxAttempts),
    requestHandler: { connectionTimeout: Math.min(10_000, settings.requestTimeoutMs), requestTimeout: settings.requestTimeoutMs },
  };
  return new EC2Client(config);
}
