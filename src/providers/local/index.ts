export { INHERITED_ENV, INSTANCE_ENV, WITHHELD_ENV, instanceEnv } from './environment.js';
export type { InstanceEnvSpec } from './environment.js';
export { localInstancePaths } from './instance-store.js';
export type { LocalInstancePaths } from './instance-store.js';
export { LocalProvider } from './local-provider.js';
export type { LocalProviderOptions } from './local-provider.js';
export { readNotice, writeNotice } from './notice.js';
