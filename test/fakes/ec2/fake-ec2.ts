/**
 * A protocol-level fake of the EC2 Query API on loopback, for the real AWS SDK v3
 * (`@aws-sdk/client-ec2` with `endpoint` set to `start()`'s answer). It speaks EC2's wire format
 * — form-encoded POSTs (`Action=…&Version=2016-11-15&…`), XML answers, EC2's error documents
 * and statuses — so the provider under test runs its real SDK code: serialization, error
 * parsing into named exceptions, retries, paginators, idempotency tokens.
 *
 * Modelled: RunInstances, DescribeInstances, TerminateInstances, CreateTags, DeleteTags; the
 * instance life cycle on an injected clock; ClientToken idempotency; capacity per type and
 * market; per-action throttling; eventual consistency; fault injection. See README.md for what
 * is modelled, what is not, and the AWS pages the shapes were checked against.
 *
 * Contract (other tests depend on it): the options and public members below. Signatures are
 * ignored (any Authorization is accepted).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer, readBody } from '../loopback.js';
import { defaultMessage, Ec2Error, errors, statusFor } from './ec2-errors.js';
import {
  type Capacity,
  Ec2Model,
  type FakeInstance,
  type InstanceStateName,
  type LaunchTemplate,
  type LaunchTemplateDefaults,
} from './ec2-model.js';
import { describeInstancesXml, errorXml, returnTrueXml, runInstancesXml, terminateInstancesXml } from './ec2-xml.js';
import { QueryParams } from './query-params.js';
import { type BucketSpec, TokenBucket } from './token-bucket.js';

export type { Capacity, FakeInstance, InstanceStateName, LaunchTemplate, LaunchTemplateDefaults };

/** The actions the fake answers; any other `Action` is refused with `InvalidAction`. */
export const ACTIONS = ['RunInstances', 'DescribeInstances', 'TerminateInstances', 'CreateTags', 'DeleteTags'] as const;
export type Ec2Action = (typeof ACTIONS)[number];

export interface FakeEc2Options {
  /** The clock (ms since the epoch); default `Date.now`. Every timed behaviour reads only this. */
  now?: () => number;
  /** Default 'eu-central-1'; instances land in `<region>a` unless a subnet or zone says otherwise. */
  region?: string;
  /** The account shown as `ownerId`; default '123456789012'. */
  accountId?: string;
  /** How long a launched instance stays pending: pending while now < launch + pendingMs. Default 0. */
  pendingMs?: number;
  /** How long a terminating instance stays shutting-down. Default 0. */
  shuttingDownMs?: number;
  /** How long a terminated instance stays listed before it is gone (NotFound). Default 3,600,000. */
  terminatedListedMs?: number;
  /**
   * Eventual consistency: for this long after launch an instance is invisible to
   * DescribeInstances (NotFound by id, absent from lists), CreateTags, DeleteTags and
   * TerminateInstances. Default 0.
   */
  visibilityDelayMs?: number;
  /** For this long after TerminateInstances, DescribeInstances still shows the state before it. Default 0. */
  terminatedVisibleAsRunningMs?: number;
  /** When given, RunInstances refuses any other AMI with InvalidAMIID.NotFound. */
  knownImages?: readonly string[];
  /** When given, RunInstances refuses any other type with InvalidParameterValue. */
  knownInstanceTypes?: readonly string[];
  /**
   * When given, RunInstances refuses any other SubnetId with InvalidSubnetID.NotFound; a map
   * also gives each subnet's zone (and VPC).
   */
  knownSubnets?: readonly string[] | Readonly<Record<string, { availabilityZone: string; vpcId?: string }>>;
  /** The most instances one RunInstances may launch (EC2's per-type instance limit stands in). Default 20. */
  maxInstancesPerCall?: number;
  /**
   * Latency added to every answer (or per action), after the request has been acted on — as a
   * slow network would: the work is done even if the client gives up. Timers, not blocking:
   * other requests are answered meanwhile. Default 0.
   */
  responseDelayMs?: number | ((action: string) => number);
  /** Called for each instance RunInstances launches, with its user data decoded (UTF-8; '' if none). */
  onLaunch?: (instance: FakeInstance & { userData: string }) => void;
  /** Called once per instance, when it starts shutting down (TerminateInstances, terminateExternally, setState). */
  onTerminate?: (instance: FakeInstance) => void;
}

export interface FaultSpec {
  /** The EC2 error code to answer, e.g. 'InternalError', 'RequestLimitExceeded'. */
  code: string;
  /** Default: EC2's message for the code, or a generic one. */
  message?: string;
  /** Default: the status EC2 sends with the code (5xx for server errors, else 400). */
  status?: number;
  /** How many calls to fail; default 1. */
  count?: number;
}

export interface RecordedCall {
  action: string;
  /** The fake's clock when the request arrived. */
  at: number;
  /** The error code answered, if the call failed. */
  error?: string;
  /** The request's parameters, without Action and Version. */
  params: Record<string, string>;
}

interface PendingFault {
  error: Ec2Error;
  left: number;
}

const MAX_BODY = 1024 * 1024;

export class FakeEc2 {
  /** Every request, in arrival order. */
  readonly calls: RecordedCall[] = [];
  /** Errors thrown by `onLaunch` / `onTerminate` (they never fail the request that caused them). */
  readonly hookErrors: unknown[] = [];

  private readonly now: () => number;
  private readonly region: string;
  private readonly model: Ec2Model;
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly faults = new Map<string, PendingFault[]>();
  private readonly delayOf: (action: string) => number;
  private readonly http = new LoopbackServer('FakeEc2', (req, res) => this.onRequest(req, res));

  constructor(options: FakeEc2Options = {}) {
    this.now = options.now ?? Date.now;
    this.region = options.region ?? 'eu-central-1';
    const delay = options.responseDelayMs ?? 0;
    this.delayOf = typeof delay === 'function' ? delay : () => delay;
    const subnets = options.knownSubnets;
    const accountId = options.accountId ?? '123456789012';
    const onLaunch = options.onLaunch;
    const onTerminate = options.onTerminate;
    this.model = new Ec2Model({
      region: this.region,
      accountId,
      pendingMs: options.pendingMs ?? 0,
      shuttingDownMs: options.shuttingDownMs ?? 0,
      terminatedListedMs: options.terminatedListedMs ?? 3_600_000,
      visibilityDelayMs: options.visibilityDelayMs ?? 0,
      terminatedVisibleAsRunningMs: options.terminatedVisibleAsRunningMs ?? 0,
      knownImages: options.knownImages ? new Set(options.knownImages) : undefined,
      knownInstanceTypes: options.knownInstanceTypes ? new Set(options.knownInstanceTypes) : undefined,
      knownSubnets:
        subnets === undefined
          ? undefined
          : new Map(
              Array.isArray(subnets)
                ? (subnets as readonly string[]).map((id) => [id, { availabilityZone: `${this.region}a`, vpcId: 'vpc-0fa4e0000000000aa' }] as const)
                : Object.entries(subnets as Readonly<Record<string, { availabilityZone: string; vpcId?: string }>>).map(
                    ([id, s]) => [id, { availabilityZone: s.availabilityZone, vpcId: s.vpcId ?? 'vpc-0fa4e0000000000aa' }] as const,
                  ),
            ),
      maxInstancesPerCall: options.maxInstancesPerCall ?? 20,
      onLaunch: onLaunch
        ? (instance) => {
            const userData = instance.userDataBase64 === undefined ? '' : Buffer.from(instance.userDataBase64, 'base64').toString('utf8');
            this.guard(() => onLaunch({ ...instance, userData }));
          }
        : undefined,
      onTerminate: onTerminate ? (instance) => this.guard(() => onTerminate(instance)) : undefined,
    });
  }

  // ---- server ----------------------------------------------------------------------------

  /** Listens on 127.0.0.1 (an ephemeral port) and answers the endpoint, `http://127.0.0.1:<port>`. */
  async start(): Promise<string> {
    return this.http.start();
  }

  get endpoint(): string {
    return this.http.origin;
  }

  /** Stops listening, drops kept-alive connections and answers still delayed. */
  async close(): Promise<void> {
    await this.http.close();
  }

  // ---- controls --------------------------------------------------------------------------

  /** How many more instances of a type may be launched, per market ('unlimited' by default). 0 → InsufficientInstanceCapacity. */
  setCapacity(instanceType: string, capacity: Capacity): void {
    this.model.setCapacity(instanceType, capacity);
  }

  /** Registers a launch template whose image and type RunInstances uses when the request has none. */
  addLaunchTemplate(name: string, defaults: LaunchTemplateDefaults = {}): LaunchTemplate {
    return this.model.addLaunchTemplate(name, defaults);
  }

  /**
   * Throttles an action with a token bucket on the fake's clock (none by default): a request
   * finding it empty gets RequestLimitExceeded (HTTP 503) and takes no token. `null` removes it.
   */
  setBucket(action: string, spec: BucketSpec | null): void {
    if (spec === null) this.buckets.delete(action);
    else this.buckets.set(action, new TokenBucket(spec, this.now));
  }

  /** Answers the next `count` calls of the action with this error, before anything else is done. Queued after earlier faults. */
  failNext(action: string, fault: FaultSpec): void {
    const count = fault.count ?? 1;
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`count must be a whole number >= 1, got ${count}`);
    const queue = this.faults.get(action) ?? [];
    queue.push({ error: new Ec2Error(fault.code, fault.message ?? defaultMessage(fault.code), fault.status ?? statusFor(fault.code)), left: count });
    this.faults.set(action, queue);
  }

  /** How many calls of the action were made; `error`: a code counts only those, `true` any failure, `false` only successes. */
  count(action: string, filter: { error?: string | boolean } = {}): number {
    return this.calls.filter((c) => {
      if (c.action !== action) return false;
      if (filter.error === undefined) return true;
      if (filter.error === true) return c.error !== undefined;
      if (filter.error === false) return c.error === undefined;
      return c.error === filter.error;
    }).length;
  }

  // ---- introspection ---------------------------------------------------------------------

  /** Every instance ever launched, terminated-and-gone and not-yet-visible ones included, in launch order. */
  instances(): FakeInstance[] {
    return this.model.instances(this.now());
  }

  instance(id: string): FakeInstance | undefined {
    return this.model.instance(id, this.now());
  }

  /** The instances whose true state is running now. */
  running(): FakeInstance[] {
    return this.instances().filter((i) => i.state === 'running');
  }

  /** As if AWS took the instance away (spot interruption, retirement): shutting-down, then terminated. */
  terminateExternally(id: string, reason?: { code: string; message: string }): FakeInstance {
    return this.model.terminateExternally(id, this.now(), reason);
  }

  /** Puts an instance in a state and pins it there (no timed transition moves it until it is terminated). */
  setState(id: string, state: InstanceStateName): FakeInstance {
    return this.model.setState(id, state, this.now());
  }

  // ---- request handling ------------------------------------------------------------------

  private guard(hook: () => void): void {
    try {
      hook();
    } catch (e) {
      this.hookErrors.push(e);
    }
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    readBody(req, MAX_BODY, (text) => {
      const params = QueryParams.fromBody(req.method === 'POST' && text !== undefined ? text : '');
      const { action, status, body, requestId } = this.answer(params);
      this.http.later(this.delayOf(action), () => {
        res.writeHead(status, {
          'content-type': 'text/xml;charset=UTF-8',
          'x-amzn-requestid': requestId,
          server: 'AmazonEC2',
        });
        res.end(body);
      });
    });
    req.on('error', () => res.destroy());
  }

  /** Acts on one request and records it; never throws. */
  private answer(params: QueryParams): { action: string; status: number; body: string; requestId: string } {
    const requestId = randomUUID();
    const at = this.now();
    const action = params.get('Action') ?? '';
    const call: RecordedCall = { action, at, params: params.without('Action', 'Version') };
    this.calls.push(call);
    try {
      const body = this.dispatch(action, params, requestId, at);
      return { action, status: 200, body, requestId };
    } catch (e) {
      const error = e instanceof Ec2Error ? e : new Ec2Error('InternalError', `An internal error has occurred. (${e instanceof Error ? e.message : String(e)})`);
      call.error = error.code;
      return { action, status: error.status, body: errorXml(requestId, error), requestId };
    }
  }

  private dispatch(action: string, params: QueryParams, requestId: string, now: number): string {
    if (action === '') throw errors.missingAction();
    const queue = this.faults.get(action);
    const fault = queue?.[0];
    if (queue && fault) {
      if (--fault.left === 0) queue.shift();
      throw fault.error;
    }
    if (!(ACTIONS as readonly string[]).includes(action)) throw errors.invalidAction(action);
    const bucket = this.buckets.get(action);
    if (bucket && !bucket.tryTake()) throw errors.requestLimitExceeded();
    switch (action as Ec2Action) {
      case 'RunInstances':
        return runInstancesXml(requestId, this.model.runInstances(params, now), this.region);
      case 'DescribeInstances': {
        const result = this.model.describeInstances(params, now);
        return describeInstancesXml(requestId, result.reservations, result.nextToken, this.region);
      }
      case 'TerminateInstances':
        return terminateInstancesXml(requestId, this.model.terminateInstances(params, now));
      case 'CreateTags':
        this.model.createTags(params, now);
        return returnTrueXml(action, requestId);
      case 'DeleteTags':
        this.model.deleteTags(params, now);
        return returnTrueXml(action, requestId);
    }
  }
}
