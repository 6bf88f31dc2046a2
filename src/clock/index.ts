export { ManualClock, SystemClock } from './clock.js';
export type { Clock, TimerHandle } from './clock.js';
export * from './turn.js';
