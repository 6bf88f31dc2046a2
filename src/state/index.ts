export { LocalOperatorState, keys } from './operator-state.js';
export { checkOperatorValue, drainRequestSchema, protectionSchema, rotationHoldSchema, sizeOverrideSchema } from './operator-state.js';
export type { CheckedValue, DrainRequest, OperatorState, Protection, RotationHold, SizeOverride } from './operator-state.js';
export { EtcdOperatorState } from './etcd-operator-state.js';
export type { EtcdOperatorStateOptions } from './etcd-operator-state.js';
