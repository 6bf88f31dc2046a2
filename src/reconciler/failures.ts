/**
 * What becomes of an event whose handling failed: it is reported (notifyError, a log line), and
 * retried by a durable timer after an exponential backoff with jitter, unless the error is
 * permanent or the event has used `shard.maxAttempts` attempts.
 */
import { PermanentError, errorMessage, isRetryable } from '../errors/index.js';
import { backoffDelay } from './backoff.js';
import type { Context } from './context.js';
import { describeEvent, groupKeyOf, type ReconcileEvent } from './events.js';
import { TimerKey } from './keys.js';

export type FailureOutcome = 'permanent' | 'gaveUp' | 'retry';

/** Reports a failed handler and schedules its retry. `tenant` '' is the shard-wide barrier. */
export function handleFailure(ctx: Context, tenant: string, group: string, event: ReconcileEvent, err: unknown): FailureOutcome {
  const key = tenant ? groupKeyOf(tenant, group) : '';
  const message = errorMessage(err);
  const attempt = (event.attempt ?? 0) + 1;
  const retryable = isRetryable(err) && !(err instanceof PermanentError);
  const instanceId = event.instanceId ?? '';
  ctx.log.warn({ group: key, instanceId: event.instanceId, event: describeEvent(event), err: message, attempt, retryable }, 'event handling failed');
  if (!retryable) {
    ctx.notifyError(key, instanceId, `${describeEvent(event)}: ${message} (permanent, not retried)`);
    return 'permanent';
  }
  if (attempt >= ctx.maxAttempts()) {
    ctx.notifyError(key, instanceId, `${describeEvent(event)}: ${message} (gave up after ${attempt} attempts)`);
    return 'gaveUp';
  }
  ctx.notifyError(key, instanceId, `${describeEvent(event)}: ${message}`);
  ctx.observer.retried?.();
  const due = ctx.clock.nowMs() + backoffDelay(attempt, ctx.random);
  ctx.timers.set(TimerKey.retry(event.type, key, event.instanceId), due, { ...event, attempt, preventDuplicate: false });
  return 'retry';
}
