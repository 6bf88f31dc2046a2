export { AGENT_CONFIG_MARKER, AGENT_PATHS, MAX_USER_DATA_BYTES, agentConfigFor, agentConfigFromUserData, defaultInstallCommand, renderAgentUserData } from './user-data.js';
export type { AgentUserDataInput } from './user-data.js';
