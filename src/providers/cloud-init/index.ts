export { agentUnit } from './agent-unit.js';
export { AGENT_CONFIG_MARKER, AGENT_PATHS, MAX_USER_DATA_BYTES, USER_DATA_MAX_BYTES, agentConfigFor, agentConfigFromUserData, defaultInstallCommand, renderAgentUserData, userDataForCreate } from './user-data.js';
export type { AgentUserDataInput, AgentUserDataMetadata } from './user-data.js';
