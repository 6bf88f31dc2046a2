/** What the fake's tests share: a real SDK client pointed at a fake, and a hand-driven clock. */
import { EC2Client } from '@aws-sdk/client-ec2';

/** The real EC2 client, as the provider will build it, aimed at the fake. */
export function ec2Client(endpoint: string, options: { maxAttempts?: number; requestTimeoutMs?: number } = {}): EC2Client {
  return new EC2Client({
    endpoint,
    region: 'eu-central-1',
    credentials: { accessKeyId: 'AKIDFAKEFAKEFAKEFAKE', secretAccessKey: 'fake-secret-fake-secret' },
    ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
    // A timed-out request must fail (and be retried), not just be warned about.
    ...(options.requestTimeoutMs !== undefined ? { requestHandler: { requestTimeout: options.requestTimeoutMs, throwOnRequestTimeout: true } } : {}),
  });
}

/** A clock that moves only when told. */
export class ManualClock {
  constructor(private t: number = Date.UTC(2026, 0, 5, 9, 0, 0)) {}
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/** Runs `fn`, expecting it to reject; answers the error for assertions. */
export async function rejectionOf(fn: () => Promise<unknown>): Promise<Error & { $metadata?: { httpStatusCode?: number } }> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof Error) return e;
    throw new Error(`rejected with a non-Error: ${String(e)}`, { cause: e });
  }
  throw new Error('expected a rejection, but it resolved');
}
