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
  /**
   * The launch hook's state (pending, continued, abandoned), on instances of a group with one: a
   * new leader adopting the instance keeps it out of service while it is pending.
   */
  launchHook: 'drover:launch-hook',
} as const;

/**
 * The keys of `ProviderCreateRequest.userData`: what the server tells a new instance's agent.
 * Always `server`; then, by the provider's `agentBootstrap`, either `agentCredential` or
 * `instanceId` + `bootstrapToken`; and with `server.tls`, `serverCa` and (mutual TLS, local
 * provider) `agentCert` / `agentKey` (src/server/tls.ts).
 */
export const USER_DATA = {
  /** The servers' base URLs, comma-separated, the current leader's first. */
  server: 'DROVER_SERVER',
  /** `agentBootstrap: 'credential'`: the agent's long-lived credential (an HMAC of the instance id). */
  agentCredential: 'DROVER_AGENT_CREDENTIAL',
  /** `agentBootstrap: 'token'`: the Drover instance id the token is bound to. */
  instanceId: 'DROVER_INSTANCE_ID',
  /**
   * `agentBootstrap: 'token'`: a one-time token (random, 256 bits, expiring after
   * `server.agentBootstrapTokenTtl`) the agent exchanges for its credential at
   * `POST /v1/agent/bootstrap`, proving with the cloud's own instance id that it runs on the
   * instance Drover created. Useless once used.
   */
  bootstrapToken: 'DROVER_BOOTSTRAP_TOKEN',
  /** PEM text of the CA the agent verifies https:// servers against (`server.tls.ca`). */
  serverCa: 'DROVER_SERVER_CA',
  /** Paths of the client certificate and key for mutual TLS (the local provider's agents). */
  agentCert: 'DROVER_AGENT_CERT',
  agentKey: 'DROVER_AGENT_KEY',
} as const;

/**
 * How a provider's instances get their agent credential:
 * - `credential` — in user data (`DROVER_AGENT_CREDENTIAL`). Only for a provider whose user data
 *   no one but the instance can read (the local provider writes it into a 0600 file).
 * - `token` — user data carries a one-time bootstrap token (`DROVER_BOOTSTRAP_TOKEN`,
 *   `DROVER_INSTANCE_ID`) instead, which the agent exchanges for its credential. For clouds whose
 *   user data is readable by any process on the instance and through the cloud's API (EC2).
 */
export type AgentBootstrap = 'credential' | 'token';

export interface ProviderCreateRequest {
  /** The Drover instance id: a create repeated with the same key must not make a second instance. */
  idempotencyKey: string;
  tags: Record<string, string>;
  template: TemplateSpec;
  /**
   * Bootstrap data for the instance's agent (as cloud "user data"), keyed by `USER_DATA`:
   * `DROVER_SERVER` (server URLs, comma-separated) and, by the provider's `agentBootstrap`,
   * `DROVER_AGENT_CREDENTIAL` or `DROVER_INSTANCE_ID` + `DROVER_BOOTSTRAP_TOKEN`; TLS material
   * with `server.tls`. Secret: never put it in tags or logs. A create repeated with the same
   * idempotency key carries a new token; the instance keeps the first create's user data, and
   * every unexpired token of the instance stays good until one is used.
   */
  userData?: Record<string, string>;
}

/** A provider's rate-limit budget as its last answer gave it. */
export interface RateLimitState {
  limit: number;
  remaining: number;
  /** Epoch ms when the budget is full again. */
  resetAtMs: number;
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
  /**
   * How the instances' agents get their credential (`AgentBootstrap`). Default `credential`;
   * a cloud whose user data others can read says `token`.
   */
  readonly agentBootstrap?: AgentBootstrap;
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
  /**
   * For a cloud whose answers say how many calls its budget has left (Hetzner's `RateLimit-*`
   * headers): `listener` gets each answer's figures, and the call gate paces itself by them.
   */
  watchRateLimit?(listener: (state: RateLimitState) => void): void;
}
