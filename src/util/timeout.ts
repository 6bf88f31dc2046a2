import type { Clock } from '../clock/index.js';
import { TimeoutError } from '../errors/index.js';

/**
 * Resolves or rejects with `work`, or rejects with a TimeoutError after `ms` on `clock`. The
 * work itself cannot be cancelled; its late result is ignored.
 */
export function withTimeout<T>(clock: Clock, ms: number, action: string, work: Promise<T>): Promise<T> {
  if (!(ms > 0) || !Number.isFinite(ms)) return work;
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = clock.schedule(clock.nowMs() + ms, () => {
      if (settled) return;
      settled = true;
      reject(new TimeoutError(action, ms));
    });
    work.then(
      (value) => {
        if (settled) return;
        settled = true;
        timer.cancel();
        resolve(value);
      },
      (err: unknown) => {
        if (settled) return;
        settled = true;
        timer.cancel();
        // Not Drover's error but whatever the promise threw, made an Error so it has a message and a
        // stack. It stays a plain Error: it has no catalogue code, and isRetryable treats it as any
        // error of unknown origin (transient); a DroverError would claim a code nobody chose.
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
