export { INHERITED_ENV, INSTANCE_ENV, WITHHELD_ENV, instanceEnv } from './environment.js';
export type { InstanceEnvSpec } from './environment.js';
export { LocalProvider, localInstancePaths, readNotice, writeNotice } from './local-provider.js';
export type { LocalInstancePaths, LocalProviderOptions } from './local-provider.js';
