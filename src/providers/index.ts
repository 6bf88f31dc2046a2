export { PROVIDER_STATUSES, TAG, TERMINAL_STATUSES, USER_DATA, isTerminalStatus } from './types.js';
export type { AgentBootstrap, Provider, ProviderCreateRequest, ProviderInstance, ProviderStatus, RateLimitState } from './types.js';
