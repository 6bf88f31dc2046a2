/**
 * The InstanceManager creates and deletes instances for the reconciler (the seed's interface).
 * The default one turns a request into a provider call with Drover's tags and the instance id
 * as idempotency key; a server passes `userData` to hand each new instance its agent credential.
 */
import type { Clock } from '../clock/index.js';
import type { ConfigLoader, TemplateSpec } from '../config/index.js';
import { doing, InstanceNotFoundError, isRetryable, NotLeaderError, PermanentError, ProviderError } from '../errors/index.js';
import { TAG, type Provider, type ProviderStatus } from '../providers/index.js';
import type { LocalDb } from '../store/index.js';

export interface CreateInstanceRequest {
  /** Drover's id for the new instance; also the provider idempotency key. */
  instanceId: string;
  tenant: string;
  group: string;
  templateName: string;
  template: TemplateSpec;
  templateHash: string;
  /** Why it is created (scaleUp, unhealthy, terminationNotice, expiry, drift, ...). */
  reason: string;
  /** When the create was recorded. */
  createdAt: Date;
  /** Set when the group has a launch hook: tagged, so that a new leader knows it is pending. */
  launchHook?: 'pending';
}

export interface CreateInstanceResponse {
  instanceId: string;
  providerId: string;
  status: ProviderStatus;
  /** How the provider launched it, when it chose among options (for the audit). */
  launchDetail?: string;
}

export interface InstanceManager {
  createInstance(req: CreateInstanceRequest): Promise<CreateInstanceResponse>;
  deleteInstance(instanceId: string): Promise<void>;
}

export interface DefaultInstanceManagerOptions {
  localDb: LocalDb;
  provider: Provider;
  configLoader: ConfigLoader;
  clock: Clock;
  /** Bootstrap data handed to the provider with each create (agent credentials, server address). */
  userData?: (req: CreateInstanceRequest) => Record<string, string>;
}

/** Tags a Drover instance carries at the provider. */
export function instanceTags(shard: string, req: CreateInstanceRequest): Record<string, string> {
  return {
    [TAG.shard]: shard,
    [TAG.tenant]: req.tenant,
    [TAG.group]: req.group,
    [TAG.instanceId]: req.instanceId,
    [TAG.templateHash]: req.templateHash,
    [TAG.templateName]: req.templateName,
    [TAG.createdAt]: req.createdAt.toISOString(),
    ...(req.launchHook ? { [TAG.launchHook]: req.launchHook } : {}),
  };
}

/** Re-labels a provider error with what was being done, keeping its retryability (a fencing refusal stays as it is). */
function wrapProviderError(action: string, err: unknown): Error {
  if (err instanceof InstanceNotFoundError || err instanceof NotLeaderError) return err;
  if (err instanceof PermanentError) return new PermanentError(new ProviderError(doing(action, err.cause), { retryable: false, cause: err.cause }));
  return new ProviderError(doing(action, err), { retryable: isRetryable(err), cause: err });
}

export class DefaultInstanceManager implements InstanceManager {
  private readonly localDb: LocalDb;
  private readonly provider: Provider;
  private readonly configLoader: ConfigLoader;
  private readonly userData: ((req: CreateInstanceRequest) => Record<string, string>) | undefined;

  constructor(options: DefaultInstanceManagerOptions) {
    this.localDb = options.localDb;
    this.provider = options.provider;
    this.configLoader = options.configLoader;
    this.userData = options.userData;
  }

  async createInstance(req: CreateInstanceRequest): Promise<CreateInstanceResponse> {
    const shard = this.configLoader.getCurrent().shard.id;
    try {
      const userData = this.userData?.(req);
      const created = await this.provider.create({
        idempotencyKey: req.instanceId,
        tags: instanceTags(shard, req),
        template: req.template,
        ...(userData ? { userData } : {}),
      });
      return { instanceId: req.instanceId, providerId: created.providerId, status: created.status, ...(created.launchDetail ? { launchDetail: created.launchDetail } : {}) };
    } catch (err) {
      throw wrapProviderError(`creating instance ${req.instanceId} in ${req.tenant}/${req.group}`, err);
    }
  }

  /**
   * Deletes the instance at the provider. An instance the provider no longer has counts as
   * deleted. When the create was never confirmed, the instance is looked up by its id tag.
   */
  async deleteInstance(instanceId: string): Promise<void> {
    const record = this.localDb.getInstance(instanceId);
    let providerIds: string[];
    if (record?.providerId) {
      providerIds = [record.providerId];
    } else {
      try {
        const found = await this.provider.list({ [TAG.instanceId]: instanceId });
        providerIds = found.map((i) => i.providerId);
      } catch (err) {
        throw wrapProviderError(`finding instance ${instanceId} to delete it`, err);
      }
    }
    for (const providerId of providerIds) {
      try {
        await this.provider.delete(providerId);
      } catch (err) {
        if (err instanceof InstanceNotFoundError) continue;
        throw wrapProviderError(`deleting instance ${instanceId} (${providerId})`, err);
      }
    }
  }
}
