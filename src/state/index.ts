export { LocalOperatorState, keys } from './operator-state.js';
export type { OperatorState, SizeOverride } from './operator-state.js';
