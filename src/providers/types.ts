/**
 * The provider contract: how Drover talks to a cloud (or to this machine). Implementations live
 * in providers/<name>/. Every method may throw; errors are classified with `isRetryable`
 * (errors/), and a missing instance is always an `InstanceNotFoundError`.
 */
import type { TemplateSpec } from '../config/index.js';

/** Statuses a provider reports. Everything but `pending` and `running` is terminal for Drover. */
export const PROVIDER_STATUSES = [
  'pending',
  'running',
  'stopping',
  'stopped',
  'suspending',
  'suspended',
  'deleting',
  'deleted',
  'repairing',
  'terminated',
] as const;
export type ProviderStatus = (typeof PROVIDER_STATUSES)[number];

/** Statuses after which an instance will not serve again (all but `pending` and `running`); it is replaced without a drain. */
export const TERMINAL_STATUSES: ReadonlySet<ProviderStatus> = new Set<ProviderStatus>(PROVIDER_STATUSES.filter((s) => s !== 'pending' && s !== 'running'));

export function isTerminalStatus(status: ProviderStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

/** Tags Drover puts on every instance it creates; the provider is the shared source of truth. */
export const TAG = {
  shard: 'drover:shard',
  tenant: 'drover:tenant',
  group: 'drover:group',
  instanceId: 'drover:instance-id',
  templateHash: 'drover:template-hash',
  templateName: 'drover:template',
  createdAt: 'drover:created-at',
  drainStartedAt: 'drover:drain-started-at',
  drainDeadline: 'drover:drain-deadline',
  drainReason: 'drover:drain-reason',
  /** When an operator cancelled the drain the other drain tags no longer show (they are empty then). */
  drainCancelledAt: 'drover:drain-cancelled-at',
} as const;

export interface ProviderCreateRequest {
  /** The Drover instance id: a create repeated with the same key must not make a second instance. */
  idempotencyKey: string;
  tags: Record<string, string>;
  template: TemplateSpec;
  /**
   * Bootstrap data for the instance's agent (as cloud "user data"): `DROVER_SERVER` (server
   * URLs, comma-separated) and `DROVER_AGENT_CREDENTIAL`. Secret: never put it in tags or logs.
   */
  userData?: Record<string, string>;
}

export interface ProviderInstance {
  providerId: string;
  status: ProviderStatus;
  tags: Record<string, string>;
  /**
   * From `create` only: how the instance was launched, when the provider chose among options
   * ("m6i.large, on-demand, subnet-b: m7i.large had no capacity"). Drover puts it in the audit.
   */
  launchDetail?: string;
}

export interface Provider {
  /** Short name for logs and metrics ("sim", "local"). */
  readonly kind: string;
  /** Creates an instance, or returns the one already created with the same idempotency key. */
  create(req: ProviderCreateRequest): Promise<ProviderInstance>;
  /** Deletes an instance. Throws InstanceNotFoundError when it does not exist. */
  delete(providerId: string): Promise<void>;
  /** Current status. Throws InstanceNotFoundError when the instance does not exist. */
  status(providerId: string): Promise<ProviderStatus>;
  /** Every instance whose tags include all of `tags`. */
  list(tags: Record<string, string>): Promise<ProviderInstance[]>;
  /** Writes tags on an instance (drain bookkeeping). Optional: providers without tags skip it. */
  setTags?(providerId: string, tags: Record<string, string>): Promise<void>;
}
