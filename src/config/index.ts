export { ConfigError, configuredGroups, formatPath, groupSettings, parseConfig, templateHash } from './config.js';
export type { ConfigIssue, DroverConfig, GroupSettings, ParseResult, ShardConfig, TemplateSpec } from './config.js';
export { formatDuration, parseDuration } from './duration.js';
export { ConfigLoader, parseConfigText, readConfigFile } from './loader.js';
export type { ConfigChangeListener, ConfigInvalidListener, FileLoaderOptions, ReloadResult } from './loader.js';
export { configSchema } from './schema.js';
export type { ConfigInput } from './schema.js';
