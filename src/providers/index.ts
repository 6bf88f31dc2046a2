export { PROVIDER_STATUSES, TAG, TERMINAL_STATUSES, isTerminalStatus } from './types.js';
export type { Provider, ProviderCreateRequest, ProviderInstance, ProviderStatus } from './types.js';
