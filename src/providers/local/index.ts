export { INSTANCE_ENV, LocalProvider, WITHHELD_ENV, instanceEnv, localInstancePaths, readNotice, writeNotice } from './local-provider.js';
export type { LocalInstancePaths, LocalProviderOptions } from './local-provider.js';
