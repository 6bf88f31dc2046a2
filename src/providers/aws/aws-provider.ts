/**
 * The EC2 provider (`provider.kind: aws`): each Drover instance is one EC2 instance, launched with
 * RunInstances and found again by its `drover:*` tags.
 *
 * Contracts (the Provider contract, src/providers/types.ts, as EC2 lets it be kept):
 * - create: RunInstances with MinCount = MaxCount = 1 and **ClientToken = the idempotency key**,
 *   always, also for fallbacks: EC2 records a token only for a launch that succeeded, so a retry
 *   after a timeout replays that launch instead of making a second instance. Tags go in
 *   TagSpecifications (they exist from the first moment, so adoption by tags never misses one).
 *   Instance types are tried in order, and within a type every subnet (starting from one chosen
 *   by the key, which spreads a group over the zones); a type, zone or market with no capacity
 *   moves on. `spot-then-on-demand` tries all spot options first: every create starts from spot
 *   again, so a later rotation returns to spot. A retry whose parameters differ from the launch
 *   that succeeded (another type after a capacity change, new user data) is answered
 *   IdempotentParameterMismatch: the instance exists, and is looked up by its client token.
 *   `launchDetail` says what was launched and what was tried before.
 * - IMDSv2 is required on every instance (HttpTokens=required): the agent speaks only v2.
 * - list: DescribeInstances filtered by the tags and by the live states, all pages. Terminated
 *   and shutting-down instances (EC2 lists them for about an hour) are not live. Instances this
 *   process launched within the grace window are included even when EC2's list lags.
 * - status: EC2 is eventually consistent: for `notFoundGraceMs` after this process launched (or
 *   found) an instance, "not found" is a retryable error, never InstanceNotFoundError, so a slow
 *   answer neither replaces the instance nor launches a duplicate.
 * - delete: TerminateInstances (idempotent in EC2); a terminated instance deletes fine; not found
 *   after the grace window is InstanceNotFoundError (Drover counts that as deleted).
 * - setTags: CreateTags in one call (empty values too: Drover's drain bookkeeping gives an empty
 *   value a meaning, "cleared").
 * Errors are read by errors.ts: throttles become ThrottledError (the call gate adapts its rate),
 * refusals a retry cannot change become PermanentError with what to fix.
 */
import {
  CreateTagsCommand,
  DescribeInstancesCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  paginateDescribeInstances,
  type EC2Client,
  type Filter,
  type Instance,
  type RunInstancesCommandInput,
  type Tag,
} from '@aws-sdk/client-ec2';
import { createHash } from 'node:crypto';
import type { Clock } from '../../clock/index.js';
import { EC2_TAGS_PER_RESOURCE_MAX, EC2_TAG_KEY_MAX, EC2_TAG_VALUE_MAX, EC2_USER_DATA_MAX_BYTES, awsTemplateSchema, type AwsTemplate } from '../../config/index.js';
import { InstanceNotFoundError, InvalidRequestError, PermanentError, ProviderError } from '../../errors/index.js';
import type { Logger } from '../../logging/index.js';
import { KeyedLock } from '../../util/keyed-lock.js';
import { userDataForCreate } from '../cloud-init/index.js';
import { TAG, type AgentBootstrap, type Provider, type ProviderCreateRequest, type ProviderInstance, type ProviderStatus } from '../types.js';
import { CapacityError, ec2ErrorCode, fromEc2Error } from './errors.js';

/** EC2's instance states, as Drover's statuses. */
const STATE_TO_STATUS: Record<string, ProviderStatus> = {
  pending: 'pending',
  running: 'running',
  stopping: 'stopping',
  stopped: 'stopped',
  'shutting-down': 'deleting',
  terminated: 'terminated',
};

/** States in which an instance is live for `list` (it exists and costs money; stopped ones are deleted by Drover). */
const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped'];

/** EC2's ClientToken: at most 64 ASCII characters. */
const CLIENT_TOKEN_MAX = 64;

export type AwsMarket = 'spot' | 'on-demand';

export interface AwsProviderOptions {
  client: EC2Client;
  clock: Clock;
  logger?: Logger;
  /** How long after a launch "not found" is retryable (EC2's eventual consistency). */
  notFoundGraceMs: number;
  /**
   * The instance's user data (before base64) for a create. Default: `ec2UserData()`, Drover's
   * agent bootstrap (cloud-init) followed by the template's own `userData`.
   */
  renderUserData?: (req: ProviderCreateRequest, template: AwsTemplate) => string | undefined;
  /** The command that installs `drover` on an instance (config `agent.install`). */
  agentInstall?: string;
  /** DescribeInstances page size for `list` (5-1000). Default 1000. */
  pageSize?: number;
}

/** One launch option: a market, an instance type (undefined: the launch template's) and a subnet. */
interface LaunchOption {
  market: AwsMarket;
  instanceType: string | undefined;
  subnetId: string | undefined;
}

/** User data for an EC2 instance: the agent bootstrap (metadata: ec2, IMDSv2) with the template's own. */
export function ec2UserData(install?: string): (req: ProviderCreateRequest, template: AwsTemplate) => string | undefined {
  return (req, template) => userDataForCreate(req, template, { metadata: 'ec2', install });
}

export class AwsProvider implements Provider {
  readonly kind = 'aws';
  /** EC2 user data is readable on the instance and through the API: it carries a one-time token, not a credential. */
  readonly agentBootstrap: AgentBootstrap = 'token';
  private readonly client: EC2Client;
  private readonly clock: Clock;
  private readonly logger: Logger | undefined;
  private readonly graceMs: number;
  private readonly renderUserData: (req: ProviderCreateRequest, template: AwsTemplate) => string | undefined;
  private readonly pageSize: number;
  /**
   * Instances this process launched or replayed: when (epoch ms), and their tags. Within the
   * grace window a NotFound is retried, and `list` includes them when EC2's lists do not yet
   * (read-your-writes: otherwise a resync right after a launch would take it for vanished).
   */
  private readonly launchedAt = new Map<string, { at: number; tags: Record<string, string>; status: ProviderStatus }>();
  /** Instances this process launched, by idempotency key: a repeated create answers without a launch. */
  private readonly byKey = new Map<string, { providerId: string; at: number }>();
  private readonly creating = new KeyedLock();

  constructor(options: AwsProviderOptions) {
    this.client = options.client;
    this.clock = options.clock;
    this.logger = options.logger;
    this.graceMs = options.notFoundGraceMs;
    this.renderUserData = options.renderUserData ?? ec2UserData(options.agentInstall);
    this.pageSize = Math.min(1000, Math.max(5, options.pageSize ?? 1000));
  }

  /** Closes the SDK client's connections (server stop). */
  close(): void {
    this.client.destroy();
  }

  create(req: ProviderCreateRequest): Promise<ProviderInstance> {
    // Concurrent creates of one key wait for each other: the second finds the first's instance.
    return this.creating.run(req.idempotencyKey, () => this.createOnce(req));
  }

  private async createOnce(req: ProviderCreateRequest): Promise<ProviderInstance> {
    const key = req.idempotencyKey;
    const template = parseTemplate(req);
    if (key.length === 0 || key.length > CLIENT_TOKEN_MAX || !/^[\x21-\x7e]+$/.test(key)) {
      throw new PermanentError(new InvalidRequestError(`launching ${key}: the idempotency key must be 1-${CLIENT_TOKEN_MAX} printable ASCII characters (EC2's ClientToken)`));
    }
    const known = this.byKey.get(key);
    if (known) {
      const [instance] = await this.describe([known.providerId], `DescribeInstances for ${key}`);
      if (instance) return this.toProviderInstance(instance, req.tags);
    }
    const tags = launchTags(req, template);
    const userData = this.renderUserData(req, template);
    if (userData !== undefined && Buffer.byteLength(userData, 'utf8') > EC2_USER_DATA_MAX_BYTES) {
      throw new PermanentError(new InvalidRequestError(`launching ${key}: the user data is ${Buffer.byteLength(userData, 'utf8')} bytes; EC2 allows ${EC2_USER_DATA_MAX_BYTES} (shorten templates.${String(req.tags[TAG.templateName] ?? '*')}.userData)`));
    }
    const tried: string[] = [];
    for (const option of launchOptions(template, key)) {
      const input = runInstancesInput(key, template, option, tags, userData);
      try {
        const answer = await this.client.send(new RunInstancesCommand(input));
        const instance = answer.Instances?.[0];
        if (!instance?.InstanceId) throw new ProviderError(`RunInstances for ${key}: the answer names no instance`);
        this.remember(key, instance.InstanceId, req.tags, statusOf(instance));
        const launched = describeOption(option);
        const detail = tried.length > 0 ? `${launched}; tried first: ${tried.join('; ')}` : launched;
        this.logger?.info({ instanceId: key, providerId: instance.InstanceId, market: option.market, instanceType: option.instanceType ?? null, subnetId: option.subnetId ?? null, tried }, 'ec2 instance launched');
        return { ...this.toProviderInstance(instance, req.tags), launchDetail: detail };
      } catch (err) {
        const code = ec2ErrorCode(err);
        if (code === 'IdempotentParameterMismatch') return this.findByClientToken(key, req.tags);
        const mapped = fromEc2Error(`RunInstances for ${key} (${describeOption(option)})`, err);
        if (mapped instanceof CapacityError) {
          tried.push(`${describeOption(option)}: ${mapped.ec2Code}`);
          continue;
        }
        throw mapped;
      }
    }
    throw new ProviderError(`launching ${key}: no capacity for any option: ${tried.join('; ')}`, { retryable: true });
  }

  /** The instance an earlier launch with this client token made (a retry with other parameters). */
  private async findByClientToken(key: string, tags: Record<string, string>): Promise<ProviderInstance> {
    const answer = await this.send(`DescribeInstances client-token=${key}`, () => this.client.send(new DescribeInstancesCommand({ Filters: [{ Name: 'client-token', Values: [key] }] })));
    const instance = answer.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId);
    if (!instance?.InstanceId) {
      // EC2 said the token was used, but its lists do not show the instance yet (eventual consistency).
      throw new ProviderError(`launching ${key}: EC2 has an instance for this client token that it does not list yet; retrying`, { retryable: true });
    }
    this.remember(key, instance.InstanceId, tags, statusOf(instance));
    return { ...this.toProviderInstance(instance, tags), launchDetail: 'found by its client token (an earlier attempt launched it)' };
  }

  async delete(providerId: string): Promise<void> {
    try {
      await this.client.send(new TerminateInstancesCommand({ InstanceIds: [providerId] }));
      // No longer live: `list` must not add it back from memory.
      const launched = this.launchedAt.get(providerId);
      if (launched) launched.status = 'deleting';
    } catch (err) {
      throw this.notFoundAware(`TerminateInstances ${providerId}`, err, providerId);
    }
  }

  async status(providerId: string): Promise<ProviderStatus> {
    const [instance] = await this.describe([providerId], `DescribeInstances ${providerId}`);
    if (!instance) throw this.notFound(providerId, `DescribeInstances ${providerId}`);
    return statusOf(instance);
  }

  async list(tags: Record<string, string>): Promise<ProviderInstance[]> {
    // Every state is asked for, and the dead are dropped here: an instance this process launched
    // that EC2 lists as terminated is dead, while one it does not list yet is only not visible.
    const filters: Filter[] = Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] }));
    const out: ProviderInstance[] = [];
    const seen = new Set<string>();
    try {
      for await (const page of paginateDescribeInstances({ client: this.client, pageSize: this.pageSize }, { Filters: filters })) {
        for (const instance of page.Reservations?.flatMap((r) => r.Instances ?? []) ?? []) {
          if (!instance.InstanceId) continue;
          seen.add(instance.InstanceId);
          if (!LIVE_STATES.includes(instance.State?.Name ?? '')) continue;
          out.push(this.toProviderInstance(instance, {}));
        }
      }
    } catch (err) {
      throw fromEc2Error('DescribeInstances (list)', err);
    }
    const now = this.clock.nowMs();
    for (const [providerId, launched] of this.launchedAt) {
      if (seen.has(providerId) || now - launched.at >= this.graceMs || launched.status === 'deleting') continue;
      if (Object.entries(tags).every(([k, v]) => launched.tags[k] === v)) out.push({ providerId, status: launched.status, tags: { ...launched.tags } });
    }
    return out;
  }

  async setTags(providerId: string, tags: Record<string, string>): Promise<void> {
    const ec2Tags = toEc2Tags(tags, `tagging ${providerId}`);
    if (ec2Tags.length === 0) return;
    try {
      await this.client.send(new CreateTagsCommand({ Resources: [providerId], Tags: ec2Tags }));
    } catch (err) {
      throw this.notFoundAware(`CreateTags ${providerId}`, err, providerId);
    }
  }

  private async describe(ids: string[], action: string): Promise<Instance[]> {
    try {
      const answer = await this.client.send(new DescribeInstancesCommand({ InstanceIds: ids }));
      return answer.Reservations?.flatMap((r) => r.Instances ?? []) ?? [];
    } catch (err) {
      if (ec2ErrorCode(err) === 'InvalidInstanceID.NotFound') return [];
      throw fromEc2Error(action, err);
    }
  }

  private async send<T>(action: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw fromEc2Error(action, err);
    }
  }

  /** A NotFound answer for an instance, within or after its grace window. */
  private notFound(providerId: string, action: string): Error {
    const launched = this.launchedAt.get(providerId);
    const age = launched === undefined ? undefined : this.clock.nowMs() - launched.at;
    if (age !== undefined && age < this.graceMs) {
      return new ProviderError(`${action}: EC2 does not show the instance yet (launched ${Math.round(age / 1000)} s ago; its API is eventually consistent); retrying`, { retryable: true });
    }
    return new InstanceNotFoundError(providerId);
  }

  private notFoundAware(action: string, err: unknown, providerId: string): Error {
    return ec2ErrorCode(err) === 'InvalidInstanceID.NotFound' ? this.notFound(providerId, action) : fromEc2Error(action, err, providerId);
  }

  private remember(key: string, providerId: string, tags: Record<string, string>, status: ProviderStatus): void {
    const now = this.clock.nowMs();
    this.launchedAt.set(providerId, { at: now, tags: { ...tags }, status: isLive(status) ? status : 'deleting' });
    this.byKey.set(key, { providerId, at: now });
    // Both maps only matter within the grace window (the key map a little longer, for retries).
    if (this.launchedAt.size > 1024) {
      for (const [id, launched] of this.launchedAt) if (now - launched.at > this.graceMs) this.launchedAt.delete(id);
      for (const [k, v] of this.byKey) if (now - v.at > Math.max(this.graceMs, 3_600_000)) this.byKey.delete(k);
    }
  }

  private toProviderInstance(instance: Instance, fallbackTags: Record<string, string>): ProviderInstance {
    const tags = fromEc2Tags(instance.Tags);
    return { providerId: instance.InstanceId ?? '', status: statusOf(instance), tags: Object.keys(tags).length > 0 ? tags : { ...fallbackTags } };
  }
}

function isLive(status: ProviderStatus): boolean {
  return status === 'pending' || status === 'running' || status === 'stopping' || status === 'stopped';
}

function statusOf(instance: Instance): ProviderStatus {
  const state = instance.State?.Name ?? '';
  const status = STATE_TO_STATUS[state];
  if (!status) throw new ProviderError(`EC2 reported instance ${instance.InstanceId ?? '?'} in an unknown state "${state}"`, { retryable: true });
  return status;
}

function parseTemplate(req: ProviderCreateRequest): AwsTemplate {
  const parsed = awsTemplateSchema.safeParse(req.template);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(template)'}: ${i.message}`).join('; ');
  throw new PermanentError(new InvalidRequestError(`launching ${req.idempotencyKey}: the template is not an EC2 launch template: ${problems}`));
}

/** Every option a create tries, in order: markets, then types, then subnets from the key's own. */
export function launchOptions(template: AwsTemplate, key: string): LaunchOption[] {
  const markets: AwsMarket[] = template.capacity === 'spot' ? ['spot'] : template.capacity === 'on-demand' ? ['on-demand'] : ['spot', 'on-demand'];
  const types: (string | undefined)[] = template.instanceTypes ?? [undefined];
  const subnets = template.subnetIds ?? [];
  const first = subnets.length > 0 ? createHash('sha256').update(key).digest().readUInt32BE(0) % subnets.length : 0;
  const ordered: (string | undefined)[] = subnets.length > 0 ? subnets.map((_, i) => subnets[(first + i) % subnets.length]) : [undefined];
  const out: LaunchOption[] = [];
  for (const market of markets) for (const instanceType of types) for (const subnetId of ordered) out.push({ market, instanceType, subnetId });
  return out;
}

function describeOption(o: LaunchOption): string {
  return [o.instanceType ?? 'launch template\'s type', o.market, ...(o.subnetId ? [o.subnetId] : [])].join(', ');
}

function runInstancesInput(key: string, template: AwsTemplate, option: LaunchOption, tags: Tag[], userData: string | undefined): RunInstancesCommandInput {
  return {
    MinCount: 1,
    MaxCount: 1,
    ClientToken: key,
    ...(template.imageId ? { ImageId: template.imageId } : {}),
    ...(option.instanceType ? { InstanceType: option.instanceType as RunInstancesCommandInput['InstanceType'] } : {}),
    ...(option.subnetId ? { SubnetId: option.subnetId } : {}),
    ...(template.securityGroupIds ? { SecurityGroupIds: template.securityGroupIds } : {}),
    ...(template.iamInstanceProfile ? { IamInstanceProfile: template.iamInstanceProfile.startsWith('arn:') ? { Arn: template.iamInstanceProfile } : { Name: template.iamInstanceProfile } } : {}),
    ...(template.keyName ? { KeyName: template.keyName } : {}),
    ...(template.launchTemplate
      ? {
          LaunchTemplate: {
            ...(template.launchTemplate.name ? { LaunchTemplateName: template.launchTemplate.name } : {}),
            ...(template.launchTemplate.id ? { LaunchTemplateId: template.launchTemplate.id } : {}),
            ...(template.launchTemplate.version ? { Version: template.launchTemplate.version } : {}),
          },
        }
      : {}),
    ...(option.market === 'spot'
      ? {
          InstanceMarketOptions: {
            MarketType: 'spot',
            // One-time and terminate: a Drover group replaces what it loses; it never wants EC2 to restart a stopped spot instance behind its back.
            SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate', ...(template.spotMaxPrice ? { MaxPrice: template.spotMaxPrice } : {}) },
          },
        }
      : {}),
    TagSpecifications: [{ ResourceType: 'instance', Tags: tags }],
    // The agent reads instance metadata with IMDSv2 tokens only; v1 (no token) is refused on the instance.
    MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled', HttpPutResponseHopLimit: 1 },
    ...(userData !== undefined ? { UserData: Buffer.from(userData, 'utf8').toString('base64') } : {}),
  };
}

/** Drover's tags, the template's own and a Name, checked against EC2's limits. */
function launchTags(req: ProviderCreateRequest, template: AwsTemplate): Tag[] {
  const all: Record<string, string> = { ...(template.tags ?? {}), ...req.tags };
  if (all.Name === undefined) {
    const tenant = req.tags[TAG.tenant];
    const group = req.tags[TAG.group];
    all.Name = tenant && group ? `drover/${tenant}/${group}/${req.idempotencyKey}` : `drover/${req.idempotencyKey}`;
  }
  return toEc2Tags(all, `launching ${req.idempotencyKey}`);
}

function toEc2Tags(tags: Record<string, string>, action: string): Tag[] {
  const entries = Object.entries(tags);
  if (entries.length > EC2_TAGS_PER_RESOURCE_MAX) throw new PermanentError(new InvalidRequestError(`${action}: ${entries.length} tags; EC2 allows ${EC2_TAGS_PER_RESOURCE_MAX} per instance`));
  for (const [k, v] of entries) {
    if (k.length === 0 || k.length > EC2_TAG_KEY_MAX) throw new PermanentError(new InvalidRequestError(`${action}: tag key "${k.slice(0, 40)}" must be 1-${EC2_TAG_KEY_MAX} characters`));
    if (v.length > EC2_TAG_VALUE_MAX) throw new PermanentError(new InvalidRequestError(`${action}: tag ${k} has ${v.length} characters; EC2 allows ${EC2_TAG_VALUE_MAX}`));
  }
  return entries.map(([Key, Value]) => ({ Key, Value }));
}

function fromEc2Tags(tags: Tag[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of tags ?? []) if (t.Key !== undefined) out[t.Key] = t.Value ?? '';
  return out;
}
