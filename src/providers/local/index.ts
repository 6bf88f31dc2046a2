export { INHERITED_ENV, INSTANCE_ENV, LocalProvider, WITHHELD_ENV, instanceEnv, localInstancePaths, readNotice, writeNotice } from './local-provider.js';
export type { InstanceEnvSpec, LocalInstancePaths, LocalProviderOptions } from './local-provider.js';
