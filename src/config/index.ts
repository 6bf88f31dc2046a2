export { ConfigError, DEFAULT_MAX_DRAIN_TIMEOUT_MS, NO_DISRUPTION_LIMITS, brakeTimingDefaults, configuredGroups, maxDrainTimeoutOf, formatPath, groupSettings, parseConfig, templateHash } from './config.js';
export type { BudgetSpec, ConfigIssue, DisruptionSettings, DroverConfig, GroupSettings, ParseResult, ShardConfig, TemplateSpec } from './config.js';
export { CronWindow, cronProblem } from './cron.js';
export { formatDuration, parseDuration } from './duration.js';
export { ConfigLoader, parseConfigText, readConfigFile } from './loader.js';
export type { ConfigChangeListener, ConfigInvalidListener, FileLoaderOptions, ReloadResult } from './loader.js';
export { AGENT_PING_MISSES, VOLUNTARY_REASONS, configSchema } from './schema.js';
export type { Quantity, VoluntaryReason } from './schema.js';
export type { ConfigInput } from './schema.js';
