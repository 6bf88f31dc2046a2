/**
 * Provider calls, one way: bounded by a timeout, and measured for the metrics
 * (`drover_provider_call_duration_seconds`, `drover_provider_errors_total`).
 */
import { withTimeout } from '../util/timeout.js';
import type { Context, ReconcilerObserver } from './context.js';

export type ProviderOperation = Parameters<NonNullable<ReconcilerObserver['providerCall']>>[0];

/**
 * Runs `call` within `timeoutMs` and reports its duration and outcome. An error for which
 * `isAnswer` says true (e.g. "not found" to a status call) is an answer, not a failure, for the
 * metrics; it is rethrown either way.
 */
export async function timedCall<T>(
  ctx: Pick<Context, 'clock' | 'observer'>,
  op: ProviderOperation,
  timeoutMs: number,
  action: string,
  call: () => Promise<T>,
  isAnswer: (err: unknown) => boolean = () => false,
): Promise<T> {
  const started = ctx.clock.nowMs();
  try {
    const result = await withTimeout(ctx.clock, timeoutMs, action, call());
    ctx.observer.providerCall?.(op, ctx.clock.nowMs() - started, null);
    return result;
  } catch (err) {
    ctx.observer.providerCall?.(op, ctx.clock.nowMs() - started, isAnswer(err) ? null : err);
    throw err;
  }
}
