/**
 * The webhook endpoints in force, built from the config with their signing secrets read from
 * `secretFile`. Built at start (a secret that cannot be read refuses the start) and at each
 * reload (one that cannot be read keeps the previous endpoints in force, as API tokens do).
 */
import { readFileSync, statSync } from 'node:fs';
import type { DroverConfig } from '../config/index.js';
import { ConfigError, errorMessage, type ConfigIssue } from '../errors/index.js';

/** The shortest signing secret accepted (a shorter one can be guessed). */
export const MIN_SECRET_LENGTH = 16;
/** Most secrets a file may hold: the current one and the previous one, while receivers move over. */
export const MAX_SECRETS = 2;

export interface NotificationEndpoint {
  name: string;
  url: string;
  /** Event types it receives (null: all). */
  events: ReadonlySet<string> | null;
  /** Tenants whose events it receives (null: all). */
  tenants: ReadonlySet<string> | null;
  /** The secrets every delivery is signed with, current first. */
  secrets: readonly string[];
  format: 'json' | 'slack';
  timeoutMs: number;
  retryForMs: number;
  maxConcurrency: number;
}

export interface NotificationSettings {
  shard: string;
  endpoints: ReadonlyMap<string, NotificationEndpoint>;
}

export const NO_NOTIFICATIONS: NotificationSettings = { shard: 'local', endpoints: new Map() };

/** Reads the secrets of one file: one per non-empty line, at most two, each long enough, the file private. */
function readSecrets(file: string, path: string, issues: ConfigIssue[]): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
    // A secret others can read lets them forge Drover's events.
    if ((statSync(file).mode & 0o077) !== 0) issues.push({ path, message: `${file} is readable by other users; make it mode 0600` });
  } catch (err) {
    issues.push({ path, message: `reading ${file}: ${errorMessage(err)}` });
    return [];
  }
  const secrets = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  if (secrets.length === 0) issues.push({ path, message: `${file} holds no secret` });
  if (secrets.length > MAX_SECRETS) issues.push({ path, message: `${file} holds ${secrets.length} secrets; at most ${MAX_SECRETS} (the current one, then the previous one)` });
  if (secrets.some((s) => s.length < MIN_SECRET_LENGTH)) issues.push({ path, message: `each secret in ${file} must be at least ${MIN_SECRET_LENGTH} characters` });
  return secrets;
}

/** The endpoints of `config`, secrets read. Throws ConfigError naming each field that is wrong. */
export function loadNotificationSettings(config: DroverConfig): NotificationSettings {
  const issues: ConfigIssue[] = [];
  const endpoints = new Map<string, NotificationEndpoint>();
  config.notifications.forEach((n, i) => {
    const secrets = readSecrets(n.secretFile, `notifications[${i}].secretFile`, issues);
    endpoints.set(n.name, {
      name: n.name,
      url: n.url,
      events: n.events ? new Set(n.events) : null,
      tenants: n.tenants ? new Set(n.tenants) : null,
      secrets,
      format: n.format,
      timeoutMs: n.timeout,
      retryForMs: n.retryFor,
      maxConcurrency: n.maxConcurrency,
    });
  });
  if (issues.length > 0) throw new ConfigError(issues, 'notifications');
  return { shard: config.shard.id, endpoints };
}

/** Whether `endpoint` receives an event of this type and tenant (a test event: only when sent to it). */
export function wants(endpoint: NotificationEndpoint, type: string, tenant: string | null): boolean {
  if (type === 'test') return false;
  if (endpoint.events && !endpoint.events.has(type)) return false;
  if (endpoint.tenants && (tenant === null || !endpoint.tenants.has(tenant))) return false;
  return true;
}

/** Whether two settings have the same endpoints with the same secrets (a re-read that changed nothing). */
export function sameSecrets(a: NotificationSettings, b: NotificationSettings): boolean {
  if (a.endpoints.size !== b.endpoints.size) return false;
  for (const [name, endpoint] of a.endpoints) {
    const other = b.endpoints.get(name);
    if (!other || other.url !== endpoint.url || other.secrets.join('\n') !== endpoint.secrets.join('\n')) return false;
  }
  return true;
}
