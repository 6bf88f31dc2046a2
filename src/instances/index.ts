export { DefaultInstanceManager, instanceTags } from './instance-manager.js';
export type { CreateInstanceRequest, CreateInstanceResponse, DefaultInstanceManagerOptions, InstanceManager } from './instance-manager.js';
