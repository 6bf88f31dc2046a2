export { LocalOperatorState, keys } from './operator-state.js';
export { autoscaleStateSchema, checkOperatorValue, configSizeSeenSchema, drainRequestSchema, protectionSchema, rotationHoldSchema, sizeOverrideSchema, sleepSchema } from './operator-state.js';
export type { AutoscaleState, CheckedValue, ConfigSizeSeen, DrainRequest, OperatorState, Protection, RotationHold, SizeOverride, TenantSleep } from './operator-state.js';
export { EtcdOperatorState } from './etcd-operator-state.js';
export type { EtcdOperatorStateOptions } from './etcd-operator-state.js';
