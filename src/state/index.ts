export { LocalOperatorState, keys } from './operator-state.js';
export type { DrainRequest, OperatorState, Protection, RotationHold, SizeOverride } from './operator-state.js';
export { EtcdOperatorState } from './etcd-operator-state.js';
export type { EtcdOperatorStateOptions } from './etcd-operator-state.js';
