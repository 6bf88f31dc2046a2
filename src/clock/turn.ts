/**
 * Waiting for the event loop rather than for time: the only places logic code may reach
 * `setImmediate` (the lint rules ban it elsewhere, as they ban timers outside the Clock).
 */

/**
 * Resolves on the next turn of the event loop, after pending I/O callbacks: lets work started
 * elsewhere (a queue handler, a provider call's continuation) run before looking again. It waits
 * for no time, so it is the same under a manual clock.
 */
export function nextTurn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/** Calls `fn` on the next turn of the event loop (the callback form of `nextTurn`). */
export function onNextTurn(fn: () => void): void {
  setImmediate(fn);
}
