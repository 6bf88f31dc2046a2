/**
 * The fake EC2's world: instances, reservations, client tokens, launch templates, capacity.
 * Each action takes the request's parameters and the time, and either returns what EC2 would
 * answer or throws an `Ec2Error` having changed nothing (every action validates everything
 * before it changes anything, as EC2's actions are atomic).
 *
 * Time is never read here: the caller passes `now`, and every time-driven change (pending →
 * running, shutting-down → terminated, a terminated instance leaving the listings, a new
 * instance becoming visible) is computed from timestamps when something looks, so a test moves
 * the fake forward by moving its clock.
 */
import { createHash, randomBytes } from 'node:crypto';
import { errors } from './ec2-errors.js';
import type { QueryParams } from './query-params.js';

export type InstanceStateName = 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped';

/** EC2's state codes (the low byte of `instanceState.code`). */
export const STATE_CODES: Readonly<Record<InstanceStateName, number>> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

export const INSTANCE_STATES = Object.keys(STATE_CODES) as InstanceStateName[];

/** A snapshot of one instance as the fake holds it (a copy: changing it changes nothing). */
export interface FakeInstance {
  instanceId: string;
  reservationId: string;
  imageId: string;
  instanceType: string;
  /** The true state now (DescribeInstances may still answer an older one: `terminatedVisibleAsRunningMs`). */
  state: InstanceStateName;
  /** When RunInstances launched it (ms since the epoch, exact; EC2's `launchTime` shows whole seconds). */
  launchTime: number;
  availabilityZone: string;
  subnetId: string;
  vpcId: string;
  privateIpAddress: string;
  /** The request's ClientToken ('' when it had none). */
  clientToken: string;
  market: 'on-demand' | 'spot';
  spotInstanceRequestId?: string;
  tags: Record<string, string>;
  securityGroupIds: string[];
  iamInstanceProfile?: { arn: string; id: string };
  /** `UserData` exactly as sent (base64); EC2 keeps it but DescribeInstances does not return it. */
  userDataBase64?: string;
  httpTokens: 'optional' | 'required';
  launchTemplate?: { id: string; name: string; version: string };
  stateReason?: { code: string; message: string };
  stateTransitionReason: string;
  /** When it became `terminated`, if it has. */
  terminatedAt?: number;
}

export interface ModelOptions {
  region: string;
  accountId: string;
  pendingMs: number;
  shuttingDownMs: number;
  terminatedListedMs: number;
  visibilityDelayMs: number;
  terminatedVisibleAsRunningMs: number;
  knownImages?: ReadonlySet<string>;
  knownInstanceTypes?: ReadonlySet<string>;
  knownSubnets?: ReadonlyMap<string, { availabilityZone: string; vpcId: string }>;
  maxInstancesPerCall: number;
  onLaunch?: (instance: FakeInstance) => void;
  onTerminate?: (instance: FakeInstance) => void;
}

export type CapacityLimit = number | 'unlimited';
export interface Capacity {
  onDemand?: CapacityLimit;
  spot?: CapacityLimit;
}

export interface LaunchTemplateDefaults {
  imageId?: string;
  instanceType?: string;
  /** The template's id; one is made up when not given. */
  id?: string;
}

export interface LaunchTemplate {
  id: string;
  name: string;
  imageId?: string;
  instanceType?: string;
}

/** One instance as RunInstances / DescribeInstances / TerminateInstances show it. */
export interface InstanceView {
  instance: FakeInstance;
  /** The state to show (older than `instance.state` while a termination is not yet visible). */
  shownState: InstanceStateName;
}

export interface ReservationView {
  reservationId: string;
  ownerId: string;
  instances: InstanceView[];
}

export interface DescribeResult {
  reservations: ReservationView[];
  nextToken?: string;
}

export interface StateChange {
  instanceId: string;
  previousState: InstanceStateName;
  currentState: InstanceStateName;
}

interface InstanceRecord {
  seq: number;
  data: FakeInstance;
  /** Exact launch time; `data.launchTime` is the same number. */
  runningAt: number;
  /** Set while shutting down: when TerminateInstances (or the cloud) started it. */
  shutdownAt?: number;
  /** When TerminateInstances was last accepted for it and the state it left. */
  terminateCalledAt?: number;
  stateBeforeTerminate?: InstanceStateName;
  /** `setState` pins a state: no timed transition moves it until it is terminated again. */
  pinned: boolean;
  terminateHookFired: boolean;
}

interface TokenRecord {
  parameters: string;
  reservationId: string;
  instanceIds: string[];
}

const INSTANCE_ID = /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;
const AMI_ID = /^ami-[0-9a-f]{8,17}$/;
const LIVE: ReadonlySet<InstanceStateName> = new Set(['pending', 'running', 'stopping', 'stopped']);
const FILTERS = new Set([
  'instance-id',
  'instance-state-name',
  'instance-state-code',
  'client-token',
  'tag-key',
  'tag-value',
  'instance-type',
  'image-id',
  'subnet-id',
  'availability-zone',
  'instance-lifecycle',
  'reservation-id',
]);
const MAX_TAGS = 50;
const MAX_KEY = 128;
const MAX_VALUE = 256;
const MAX_USER_DATA = 16 * 1024;
const MAX_CLIENT_TOKEN = 64;

export function hex(n: number): string {
  return randomBytes(Math.ceil(n / 2)).toString('hex').slice(0, n);
}

function codePoints(s: string): number {
  return [...s].length;
}

function isReserved(key: string): boolean {
  return key.toLowerCase().startsWith('aws:');
}

/** An EC2 filter value: `*` matches any run of characters, `?` any one; `\` escapes them. */
function globToRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '\\' && i + 1 < glob.length) out += glob[++i]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else out += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`, 's');
}

function copy(instance: FakeInstance): FakeInstance {
  return {
    ...instance,
    tags: { ...instance.tags },
    securityGroupIds: [...instance.securityGroupIds],
    ...(instance.iamInstanceProfile ? { iamInstanceProfile: { ...instance.iamInstanceProfile } } : {}),
    ...(instance.launchTemplate ? { launchTemplate: { ...instance.launchTemplate } } : {}),
    ...(instance.stateReason ? { stateReason: { ...instance.stateReason } } : {}),
  };
}

function gmt(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} GMT`;
}

interface TagInput {
  key: string;
  value: string;
}

/** Checks tags as EC2 does for CreateTags and TagSpecification. */
function validateTags(tags: readonly TagInput[]): void {
  for (const { key, value } of tags) {
    if (key === '') throw errors.invalidParameterValue('Tag key must not be empty');
    if (codePoints(key) > MAX_KEY) throw errors.invalidParameterValue(`Tag key exceeds the maximum length of ${MAX_KEY} characters: '${key}'`);
    if (codePoints(value) > MAX_VALUE) throw errors.invalidParameterValue(`Tag value exceeds the maximum length of ${MAX_VALUE} characters: '${value}'`);
    if (isReserved(key)) throw errors.invalidParameterValue("Tag keys starting with 'aws:' are reserved for internal use");
  }
}

/** The user tags a resource would hold after adding `tags` (aws: tags do not count). */
function userTagCount(existing: Record<string, string>, added: readonly TagInput[]): number {
  const keys = new Set(Object.keys(existing).filter((k) => !isReserved(k)));
  for (const t of added) keys.add(t.key);
  return keys.size;
}

export class Ec2Model {
  private readonly records = new Map<string, InstanceRecord>();
  private readonly ordered: InstanceRecord[] = [];
  private readonly tokens = new Map<string, TokenRecord>();
  private readonly capacity = new Map<string, { onDemand: CapacityLimit; spot: CapacityLimit }>();
  private readonly templatesByName = new Map<string, LaunchTemplate>();
  private readonly templatesById = new Map<string, LaunchTemplate>();
  private seq = 0;
  private nextIp = 10;

  constructor(private readonly options: ModelOptions) {}

  // ---- controls --------------------------------------------------------------------------

  setCapacity(instanceType: string, capacity: Capacity): void {
    const current = this.capacity.get(instanceType) ?? { onDemand: 'unlimited', spot: 'unlimited' };
    for (const v of [capacity.onDemand, capacity.spot]) {
      if (v !== undefined && v !== 'unlimited' && (!Number.isInteger(v) || v < 0)) throw new RangeError(`capacity must be a whole number >= 0 or 'unlimited', got ${v}`);
    }
    this.capacity.set(instanceType, {
      onDemand: capacity.onDemand ?? current.onDemand,
      spot: capacity.spot ?? current.spot,
    });
  }

  /** How many more instances of the type can be launched in the market. */
  capacityLeft(instanceType: string, market: 'on-demand' | 'spot'): CapacityLimit {
    const c = this.capacity.get(instanceType);
    if (!c) return 'unlimited';
    return market === 'spot' ? c.spot : c.onDemand;
  }

  addLaunchTemplate(name: string, defaults: LaunchTemplateDefaults): LaunchTemplate {
    const template: LaunchTemplate = { id: defaults.id ?? `lt-${hex(17)}`, name, imageId: defaults.imageId, instanceType: defaults.instanceType };
    const old = this.templatesByName.get(name);
    if (old) this.templatesById.delete(old.id);
    this.templatesByName.set(name, template);
    this.templatesById.set(template.id, template);
    return { ...template };
  }

  instances(now: number): FakeInstance[] {
    return this.ordered.map((r) => copy(this.advance(r, now).data));
  }

  instance(id: string, now: number): FakeInstance | undefined {
    const r = this.records.get(id);
    return r ? copy(this.advance(r, now).data) : undefined;
  }

  /**
   * Puts an instance in a state, and pins it there: timed transitions no longer move it (an
   * instance stuck pending, a shutdown that never ends). Terminating it from a live state
   * (TerminateInstances, `terminateExternally`) unpins it. Entering shutting-down or terminated
   * from a live state calls `onTerminate` (once per instance).
   */
  setState(id: string, state: InstanceStateName, now: number): FakeInstance {
    const r = this.mustRecord(id);
    this.advance(r, now);
    r.data.state = state;
    r.pinned = true;
    if (state === 'shutting-down') r.shutdownAt = now;
    if (state === 'terminated') r.data.terminatedAt = now;
    else delete r.data.terminatedAt;
    if (state === 'shutting-down' || state === 'terminated') this.fireTerminate(r);
    return copy(r.data);
  }

  /**
   * The cloud takes an instance away (a spot interruption, a host retirement): it goes through
   * shutting-down to terminated like a terminated one, with the reason EC2 would give.
   */
  terminateExternally(id: string, now: number, reason?: { code: string; message: string }): FakeInstance {
    const r = this.mustRecord(id);
    this.advance(r, now);
    if (LIVE.has(r.data.state)) {
      const spot = r.data.market === 'spot';
      r.data.stateReason = reason ?? (spot
        ? { code: 'Server.SpotInstanceTermination', message: 'Server.SpotInstanceTermination: Spot instance termination' }
        : { code: 'Server.ScheduledStop', message: 'Server.ScheduledStop: Stopped due to scheduled retirement' });
      r.data.stateTransitionReason = `Service initiated (${gmt(now)})`;
      this.startShutdown(r, now);
    }
    return copy(this.advance(r, now).data);
  }

  // ---- actions ---------------------------------------------------------------------------

  runInstances(p: QueryParams, now: number): ReservationView {
    const clientToken = p.get('ClientToken') ?? '';
    if (codePoints(clientToken) > MAX_CLIENT_TOKEN) throw errors.invalidParameterValue(`Client token must be at most ${MAX_CLIENT_TOKEN} characters`);
    const parameters = p.canonical('ClientToken', 'Action', 'Version');
    if (clientToken !== '') {
      const previous = this.tokens.get(clientToken);
      if (previous) {
        if (previous.parameters !== parameters) throw errors.idempotentMismatch();
        // The same request again: the same reservation, as it is now. Nothing new is launched,
        // whatever happened to the instances since (EC2 keeps tokens for days; the fake forever).
        return this.reservationView(previous.reservationId, previous.instanceIds, now);
      }
    }

    const template = this.launchTemplateOf(p);
    const imageId = p.get('ImageId') ?? template?.imageId;
    if (imageId === undefined || imageId === '') throw errors.missingParameter('ImageId');
    if (!AMI_ID.test(imageId)) throw errors.amiMalformed(imageId);
    if (this.options.knownImages && !this.options.knownImages.has(imageId)) throw errors.amiNotFound(imageId);
    // m1.small is EC2's documented default when neither the request nor a template names one.
    const instanceType = p.get('InstanceType') ?? template?.instanceType ?? 'm1.small';
    if (this.options.knownInstanceTypes && !this.options.knownInstanceTypes.has(instanceType)) {
      throw errors.invalidParameterValue(`Invalid value '${instanceType}' for InstanceType.`);
    }

    const minCount = this.count(p, 'MinCount');
    const maxCount = this.count(p, 'MaxCount');
    if (minCount > maxCount) throw errors.invalidParameterValue(`MinCount (${minCount}) must not be greater than MaxCount (${maxCount})`);
    if (minCount > this.options.maxInstancesPerCall) throw errors.instanceLimitExceeded(minCount, this.options.maxInstancesPerCall);

    const placementZone = p.get('Placement.AvailabilityZone');
    let subnetId = p.get('SubnetId');
    let availabilityZone = placementZone ?? `${this.options.region}a`;
    let vpcId = 'vpc-0fa4e0000000000aa';
    if (subnetId !== undefined && this.options.knownSubnets) {
      const subnet = this.options.knownSubnets.get(subnetId);
      if (!subnet) throw errors.subnetNotFound(subnetId);
      availabilityZone = subnet.availabilityZone;
      vpcId = subnet.vpcId;
    }
    // Without a subnet EC2 uses the default VPC's default subnet in the zone; name one per zone.
    subnetId ??= `subnet-${createHash('sha256').update(availabilityZone).digest('hex').slice(0, 17)}`;

    const securityGroupIds = p.list('SecurityGroupId');
    const profileArn = p.get('IamInstanceProfile.Arn');
    const profileName = p.get('IamInstanceProfile.Name');
    const iamInstanceProfile =
      profileArn !== undefined || profileName !== undefined
        ? { arn: profileArn ?? `arn:aws:iam::${this.options.accountId}:instance-profile/${profileName}`, id: `AIPA${hex(17).toUpperCase()}` }
        : undefined;

    const userDataBase64 = p.get('UserData');
    if (userDataBase64 !== undefined) {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(userDataBase64) || userDataBase64.length % 4 !== 0) throw errors.invalidParameterValue('Invalid BASE64 encoding of user data.');
      if (Buffer.from(userDataBase64, 'base64').length > MAX_USER_DATA) throw errors.invalidParameterValue(`User data is limited to ${MAX_USER_DATA} bytes`);
    }

    const tags = this.tagSpecifications(p);

    const marketType = p.get('InstanceMarketOptions.MarketType');
    if (marketType !== undefined && marketType !== 'spot') {
      throw errors.invalidParameterValue(`Invalid value '${marketType}' for InstanceMarketOptions.MarketType.`);
    }
    const market = marketType === 'spot' ? 'spot' : 'on-demand';

    const httpTokens = p.get('MetadataOptions.HttpTokens') ?? 'optional';
    if (httpTokens !== 'optional' && httpTokens !== 'required') throw errors.invalidParameterValue(`Invalid value '${httpTokens}' for MetadataOptions.HttpTokens.`);

    const left = this.capacityLeft(instanceType, market);
    const launched = left === 'unlimited' ? Math.min(maxCount, this.options.maxInstancesPerCall) : Math.min(maxCount, this.options.maxInstancesPerCall, left);
    if (launched < minCount) throw market === 'spot' ? errors.insufficientSpotCapacity() : errors.insufficientCapacity(instanceType, availabilityZone);

    // Everything is valid: launch.
    if (left !== 'unlimited') {
      const c = this.capacity.get(instanceType)!;
      if (market === 'spot') c.spot = left - launched;
      else c.onDemand = left - launched;
    }
    const reservationId = `r-${hex(17)}`;
    const ids: string[] = [];
    const versionAsked = p.get('LaunchTemplate.Version');
    for (let i = 0; i < launched; i++) {
      const instanceTags: Record<string, string> = {};
      if (template) {
        // EC2 tags an instance launched from a template with the template's id and version.
        instanceTags['aws:ec2launchtemplate:id'] = template.id;
        instanceTags['aws:ec2launchtemplate:version'] = versionAsked !== undefined && /^\d+$/.test(versionAsked) ? versionAsked : '1';
      }
      for (const t of tags) instanceTags[t.key] = t.value;
      const data: FakeInstance = {
        instanceId: this.newInstanceId(),
        reservationId,
        imageId,
        instanceType,
        state: 'pending',
        launchTime: now,
        availabilityZone,
        subnetId,
        vpcId,
        privateIpAddress: this.newIp(),
        clientToken,
        market,
        ...(market === 'spot' ? { spotInstanceRequestId: `sir-${hex(8)}` } : {}),
        tags: instanceTags,
        securityGroupIds: [...securityGroupIds],
        ...(iamInstanceProfile ? { iamInstanceProfile: { ...iamInstanceProfile } } : {}),
        ...(userDataBase64 !== undefined ? { userDataBase64 } : {}),
        httpTokens,
        ...(template ? { launchTemplate: { id: template.id, name: template.name, version: versionAsked ?? '$Default' } } : {}),
        stateTransitionReason: '',
      };
      const record: InstanceRecord = { seq: ++this.seq, data, runningAt: now + this.options.pendingMs, pinned: false, terminateHookFired: false };
      this.records.set(data.instanceId, record);
      this.ordered.push(record);
      ids.push(data.instanceId);
    }
    if (clientToken !== '') this.tokens.set(clientToken, { parameters, reservationId, instanceIds: ids });
    const view = this.reservationView(reservationId, ids, now);
    for (const id of ids) this.options.onLaunch?.(copy(this.records.get(id)!.data));
    return view;
  }

  describeInstances(p: QueryParams, now: number): DescribeResult {
    const ids = p.list('InstanceId');
    const maxResultsText = p.get('MaxResults');
    if (ids.length > 0 && maxResultsText !== undefined) {
      throw errors.invalidParameterCombination('The parameter instancesSet cannot be used with the parameter maxResults');
    }
    let pageSize: number | undefined;
    if (maxResultsText !== undefined) {
      const n = Number(maxResultsText);
      if (!Number.isInteger(n) || n < 5 || n > 1000) {
        throw errors.invalidParameterValue(`Value ( ${maxResultsText} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.`);
      }
      pageSize = n;
    }
    for (const id of ids) if (!INSTANCE_ID.test(id)) throw errors.instanceMalformed(id);
    const missing = ids.filter((id) => !this.visibleRecord(id, now));
    if (missing.length > 0) throw errors.instanceNotFound(missing);

    const filters = this.filters(p);
    const fingerprint = createHash('sha256').update(JSON.stringify([ids, filters.map((f) => [f.name, f.values])])).digest('hex').slice(0, 16);
    let after = 0;
    const tokenText = p.get('NextToken');
    if (tokenText !== undefined && tokenText !== '') {
      after = this.readToken(tokenText, fingerprint);
      pageSize ??= 1000;
    }

    const idSet = ids.length > 0 ? new Set(ids) : undefined;
    const matching: InstanceRecord[] = [];
    let more = false;
    for (const r of this.ordered) {
      if (r.seq <= after) continue;
      if (idSet && !idSet.has(r.data.instanceId)) continue;
      if (!this.isVisible(r, now)) continue;
      if (!filters.every((f) => this.matches(r, f, now))) continue;
      if (pageSize !== undefined && matching.length === pageSize) {
        more = true;
        break;
      }
      matching.push(r);
    }

    const reservations: ReservationView[] = [];
    for (const r of matching) {
      const last = reservations[reservations.length - 1];
      const view = this.view(r, now);
      if (last && last.reservationId === r.data.reservationId) last.instances.push(view);
      else reservations.push({ reservationId: r.data.reservationId, ownerId: this.options.accountId, instances: [view] });
    }
    const result: DescribeResult = { reservations };
    if (more) result.nextToken = Buffer.from(JSON.stringify({ v: 1, after: matching[matching.length - 1]!.seq, q: fingerprint })).toString('base64url');
    return result;
  }

  terminateInstances(p: QueryParams, now: number): StateChange[] {
    const ids = p.list('InstanceId');
    if (ids.length === 0) throw errors.missingParameter('InstanceId');
    for (const id of ids) if (!INSTANCE_ID.test(id)) throw errors.instanceMalformed(id);
    const missing = ids.filter((id) => !this.visibleRecord(id, now));
    if (missing.length > 0) throw errors.instanceNotFound(missing);
    return ids.map((id) => {
      const r = this.records.get(id)!;
      this.advance(r, now);
      const previousState = this.shownState(r, now);
      if (LIVE.has(r.data.state)) {
        r.stateBeforeTerminate = r.data.state;
        r.terminateCalledAt = now;
        r.data.stateReason = { code: 'Client.UserInitiatedShutdown', message: 'Client.UserInitiatedShutdown: User initiated shutdown' };
        r.data.stateTransitionReason = `User initiated (${gmt(now)})`;
        this.startShutdown(r, now);
        // EC2 answers shutting-down for an instance it has just begun to terminate, even when
        // the next look finds it terminated already (shuttingDownMs 0).
        return { instanceId: id, previousState, currentState: 'shutting-down' };
      }
      return { instanceId: id, previousState, currentState: r.data.state };
    });
  }

  createTags(p: QueryParams, now: number): void {
    const targets = this.tagTargets(p, now);
    const indices = p.indices('Tag');
    if (indices.length === 0) throw errors.missingParameter('Tag');
    const tags = indices.map((i) => ({ key: p.get(`Tag.${i}.Key`) ?? '', value: p.get(`Tag.${i}.Value`) ?? '' }));
    validateTags(tags);
    for (const r of targets) if (userTagCount(r.data.tags, tags) > MAX_TAGS) throw errors.tagLimitExceeded(r.data.instanceId);
    for (const r of targets) for (const t of tags) r.data.tags[t.key] = t.value;
  }

  /**
   * DeleteTags: a tag given with a value (even an empty one) is deleted only when the resource's
   * value equals it; a tag given without a value is deleted whatever its value; no tags at all
   * deletes every user tag (EC2's documented behaviour).
   */
  deleteTags(p: QueryParams, now: number): void {
    const targets = this.tagTargets(p, now);
    const tags = p.indices('Tag').map((i) => ({ key: p.get(`Tag.${i}.Key`) ?? '', value: p.has(`Tag.${i}.Value`) ? p.get(`Tag.${i}.Value`)! : undefined }));
    for (const t of tags) {
      if (t.key === '') throw errors.missingParameter('Tag.N.Key');
      if (isReserved(t.key)) throw errors.invalidParameterValue("Tag keys starting with 'aws:' are reserved for internal use");
    }
    for (const r of targets) {
      if (tags.length === 0) {
        for (const k of Object.keys(r.data.tags)) if (!isReserved(k)) delete r.data.tags[k];
        continue;
      }
      for (const t of tags) {
        if (!(t.key in r.data.tags)) continue;
        if (t.value === undefined || r.data.tags[t.key] === t.value) delete r.data.tags[t.key];
      }
    }
  }

  // ---- internals -------------------------------------------------------------------------

  private mustRecord(id: string): InstanceRecord {
    const r = this.records.get(id);
    if (!r) throw new Error(`FakeEc2: no instance ${id}`);
    return r;
  }

  private newInstanceId(): string {
    let id: string;
    do id = `i-${hex(17)}`;
    while (this.records.has(id));
    return id;
  }

  private newIp(): string {
    const n = this.nextIp++;
    return `10.0.${Math.floor(n / 250) % 250}.${(n % 250) + 2}`;
  }

  private count(p: QueryParams, name: 'MinCount' | 'MaxCount'): number {
    const text = p.get(name);
    if (text === undefined) throw errors.missingParameter(name);
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw errors.invalidParameterValue(`Value (${text}) for parameter ${name[0]!.toLowerCase()}${name.slice(1)} is invalid. Expecting a value greater than 0.`);
    return n;
  }

  private launchTemplateOf(p: QueryParams): LaunchTemplate | undefined {
    const name = p.get('LaunchTemplate.LaunchTemplateName');
    const id = p.get('LaunchTemplate.LaunchTemplateId');
    if (name !== undefined && id !== undefined) {
      throw errors.invalidParameterCombination('Only one of LaunchTemplateId or LaunchTemplateName may be specified');
    }
    if (name !== undefined) {
      const t = this.templatesByName.get(name);
      if (!t) throw errors.launchTemplateNameNotFound(name);
      return t;
    }
    if (id !== undefined) {
      const t = this.templatesById.get(id);
      if (!t) throw errors.launchTemplateIdNotFound(id);
      return t;
    }
    return undefined;
  }

  private tagSpecifications(p: QueryParams): TagInput[] {
    const out: TagInput[] = [];
    for (const i of p.indices('TagSpecification')) {
      const prefix = `TagSpecification.${i}`;
      const resourceType = p.get(`${prefix}.ResourceType`);
      if (resourceType === undefined) throw errors.missingParameter(`${prefix}.ResourceType`);
      const tags = p.indices(`${prefix}.Tag`).map((j) => ({ key: p.get(`${prefix}.Tag.${j}.Key`) ?? '', value: p.get(`${prefix}.Tag.${j}.Value`) ?? '' }));
      validateTags(tags);
      if (userTagCount({}, tags) > MAX_TAGS) throw errors.tagLimitExceeded('(new instance)');
      // Tags for volumes, network interfaces or the spot request are checked but not modelled.
      if (resourceType === 'instance') out.push(...tags);
    }
    if (userTagCount({}, out) > MAX_TAGS) throw errors.tagLimitExceeded('(new instance)');
    return out;
  }

  private tagTargets(p: QueryParams, now: number): InstanceRecord[] {
    const ids = p.list('ResourceId');
    if (ids.length === 0) throw errors.missingParameter('ResourceId');
    for (const id of ids) {
      // Only instances are modelled; any other resource id is refused as EC2 refuses a bad one.
      if (!id.startsWith('i-')) throw errors.invalidId(id);
      if (!INSTANCE_ID.test(id)) throw errors.instanceMalformed(id);
    }
    const missing = ids.filter((id) => !this.visibleRecord(id, now));
    if (missing.length > 0) throw errors.instanceNotFound(missing);
    return ids.map((id) => this.records.get(id)!);
  }

  private filters(p: QueryParams): Array<{ name: string; values: string[]; patterns: RegExp[] }> {
    return p.indices('Filter').map((i) => {
      const name = p.get(`Filter.${i}.Name`);
      if (name === undefined) throw errors.missingParameter(`Filter.${i}.Name`);
      if (!name.startsWith('tag:') && !FILTERS.has(name)) throw errors.invalidParameterValue(`The filter '${name}' is invalid`);
      const values = p.list(`Filter.${i}.Value`);
      return { name, values, patterns: values.map(globToRegExp) };
    });
  }

  private matches(r: InstanceRecord, f: { name: string; patterns: RegExp[] }, now: number): boolean {
    const d = r.data;
    const any = (candidates: readonly string[]) => candidates.some((c) => f.patterns.some((re) => re.test(c)));
    const shown = this.shownState(r, now);
    if (f.name.startsWith('tag:')) {
      const key = f.name.slice(4);
      return key in d.tags && any([d.tags[key]!]);
    }
    switch (f.name) {
      case 'instance-id':
        return any([d.instanceId]);
      case 'instance-state-name':
        return any([shown]);
      case 'instance-state-code':
        return any([String(STATE_CODES[shown])]);
      case 'client-token':
        return any([d.clientToken]);
      case 'tag-key':
        return any(Object.keys(d.tags));
      case 'tag-value':
        return any(Object.values(d.tags));
      case 'instance-type':
        return any([d.instanceType]);
      case 'image-id':
        return any([d.imageId]);
      case 'subnet-id':
        return any([d.subnetId]);
      case 'availability-zone':
        return any([d.availabilityZone]);
      case 'instance-lifecycle':
        return d.market === 'spot' && any(['spot']);
      case 'reservation-id':
        return any([d.reservationId]);
      default:
        return false;
    }
  }

  private readToken(text: string, fingerprint: string): number {
    try {
      const parsed: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
      if (typeof parsed === 'object' && parsed !== null) {
        const { v, after, q } = parsed as Record<string, unknown>;
        if (v === 1 && typeof after === 'number' && Number.isInteger(after) && q === fingerprint) return after;
      }
    } catch {
      // fall through: not one of ours
    }
    throw errors.invalidParameterValue(`Invalid value '${text}' for nextToken`);
  }

  private startShutdown(r: InstanceRecord, now: number): void {
    r.pinned = false;
    r.data.state = 'shutting-down';
    r.shutdownAt = now;
    this.fireTerminate(r);
    this.advance(r, now);
  }

  private fireTerminate(r: InstanceRecord): void {
    if (r.terminateHookFired) return;
    r.terminateHookFired = true;
    this.options.onTerminate?.(copy(r.data));
  }

  /** Applies the timed transitions due by `now`. */
  private advance(r: InstanceRecord, now: number): InstanceRecord {
    if (r.pinned) return r;
    if (r.data.state === 'pending' && now >= r.runningAt) r.data.state = 'running';
    if (r.data.state === 'shutting-down' && r.shutdownAt !== undefined && now >= r.shutdownAt + this.options.shuttingDownMs) {
      r.data.state = 'terminated';
      r.data.terminatedAt = r.shutdownAt + this.options.shuttingDownMs;
    }
    return r;
  }

  /** The state DescribeInstances answers: the one before termination while that is not yet visible. */
  private shownState(r: InstanceRecord, now: number): InstanceStateName {
    this.advance(r, now);
    if (
      r.terminateCalledAt !== undefined &&
      r.stateBeforeTerminate !== undefined &&
      now < r.terminateCalledAt + this.options.terminatedVisibleAsRunningMs
    ) {
      return r.stateBeforeTerminate;
    }
    return r.data.state;
  }

  /** Whether the API can see the instance now: launched long enough ago, and not yet gone. */
  private isVisible(r: InstanceRecord, now: number): boolean {
    this.advance(r, now);
    if (now < r.data.launchTime + this.options.visibilityDelayMs) return false;
    if (r.data.state === 'terminated' && r.data.terminatedAt !== undefined && now >= r.data.terminatedAt + this.options.terminatedListedMs) return false;
    return true;
  }

  private visibleRecord(id: string, now: number): InstanceRecord | undefined {
    const r = this.records.get(id);
    return r && this.isVisible(r, now) ? r : undefined;
  }

  private view(r: InstanceRecord, now: number): InstanceView {
    return { instance: copy(this.advance(r, now).data), shownState: this.shownState(r, now) };
  }

  private reservationView(reservationId: string, ids: readonly string[], now: number): ReservationView {
    return { reservationId, ownerId: this.options.accountId, instances: ids.map((id) => this.view(this.records.get(id)!, now)) };
  }
}
