/**
 * Drover's public API. The reconciler and the collaborators needed to embed it.
 */
export { EventType, Reconciler, planGroup, describeEvent, groupKeyOf } from './reconciler/index.js';
export type {
  Block,
  BlockCode,
  DrainReason,
  GroupSummary,
  Logger,
  Plan,
  PlanAction,
  PlanInput,
  ReconcileEvent,
  ReconcilerObserver,
  ReconcilerOptions,
  ReconcilerStore,
} from './reconciler/index.js';
export {
  ConflictError,
  DroverError,
  ERROR_CODES,
  InstanceNotFoundError,
  InternalError,
  InvalidRequestError,
  NotLeaderError,
  PermanentError,
  ProviderError,
  SettingError,
  ThrottledError,
  TimeoutError,
  isRetryable,
  newPermanentError,
} from './errors/index.js';
export type { ErrorCode } from './errors/index.js';
export { ManualClock, SystemClock } from './clock/index.js';
export type { Clock, TimerHandle } from './clock/index.js';
export { ConfigError, ConfigLoader, NO_DISRUPTION_LIMITS, formatDuration, parseConfig, parseDuration, templateHash, groupSettings } from './config/index.js';
export type { ConfigIssue, DisruptionSettings, DroverConfig, GroupSettings, LaunchHookResult, LaunchHookSettings, ShardConfig, TemplateSpec, VoluntaryReason } from './config/index.js';
export { LocalDb, openLocalDb } from './store/index.js';
export type { AuditAction, AuditEntry, AuditFilter, GroupState, InstanceFilter, InstanceRecord, InstanceStatus, StoreChange } from './store/index.js';
export { PROVIDER_STATUSES, TAG, TERMINAL_STATUSES, USER_DATA, isTerminalStatus } from './providers/index.js';
export type { AgentBootstrap, Provider, ProviderCreateRequest, ProviderInstance, ProviderStatus } from './providers/index.js';
export { SimProvider } from './providers/sim/index.js';
export type { SimCall, SimInstance, SimOperation, SimProviderOptions } from './providers/sim/index.js';
export { DefaultInstanceManager } from './instances/index.js';
export type { CreateInstanceRequest, CreateInstanceResponse, DefaultInstanceManagerOptions, InstanceManager } from './instances/index.js';
