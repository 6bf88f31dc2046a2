/**
 * An EC2 instance metadata client (IMDSv2) on `fetch`: what an agent on an EC2 instance reads
 * about its machine — its instance id (the bootstrap exchange's proof), spot interruption notices
 * and rebalance recommendations (notice-watcher.ts).
 *
 * Contracts:
 * - Sessions. Every read carries `X-aws-ec2-metadata-token`, got by
 *   `PUT {endpoint}/latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` (default
 *   21600, the most IMDS allows). A token is renewed when less than a tenth of its life (at most
 *   a minute) is left, and at once when a read is answered 401 (the read is then made once more).
 * - Endpoint. `endpoint` is a base URL and may carry a path prefix (`http://host:port/prefix`):
 *   paths are appended to it. `imdsEndpoint()` picks the agent config's `imds.endpoint`, else the
 *   environment's AWS_EC2_METADATA_SERVICE_ENDPOINT, else http://169.254.169.254.
 * - Bounds. Every request is aborted after `timeoutMs` on the injected clock (default 2 s; IMDS
 *   answers in well under a millisecond, so a slow answer is a broken one); an answer longer than
 *   `maxBytes` (default 64 KiB) is refused; every answer is validated before it is used (an
 *   instance id must look like one, a notice's time must be a time) and refused with an error
 *   naming the path otherwise.
 * - Answers. A 404 is "nothing there" (`undefined`); any other status but 200 is an error
 *   (UnavailableError, retryable), as is an answer that does not validate (InvalidRequestError);
 *   a timeout is a TimeoutError.
 */
import { z } from 'zod';
import type { Clock } from '../clock/index.js';
import { InvalidRequestError, UnavailableError, doing } from '../errors/index.js';
import { metadataRequest } from './metadata-http.js';
import { isoToMs } from './protocol.js';

export const DEFAULT_IMDS_ENDPOINT = 'http://169.254.169.254';
export const IMDS_ENDPOINT_ENV = 'AWS_EC2_METADATA_SERVICE_ENDPOINT';
export const IMDS_TOKEN_PATH = '/latest/api/token';
export const IMDS_INSTANCE_ID_PATH = '/latest/meta-data/instance-id';
export const IMDS_SPOT_ACTION_PATH = '/latest/meta-data/spot/instance-action';
export const IMDS_REBALANCE_PATH = '/latest/meta-data/events/recommendations/rebalance';
const TOKEN_TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';
const TOKEN_HEADER = 'x-aws-ec2-metadata-token';

/** The IMDS base URL: the agent config's, else the environment's, else the link-local default. */
export function imdsEndpoint(configured: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[IMDS_ENDPOINT_ENV]?.trim();
  return configured ?? (fromEnv ? fromEnv : DEFAULT_IMDS_ENDPOINT);
}

/** A spot interruption notice: what EC2 will do to the instance, and when. */
export interface SpotInstanceAction {
  action: 'terminate' | 'stop' | 'hibernate';
  time: Date;
}

const isoTime = z.string().max(64).refine((s) => isoToMs(s) !== undefined, { message: 'must be an ISO time' });
const spotActionSchema = z.object({ action: z.enum(['terminate', 'stop', 'hibernate']), time: isoTime });
const rebalanceSchema = z.object({ noticeTime: isoTime });
/**
 * An instance id: one word of letters, digits and ".", "_", ":", "-" (EC2's are "i-" and 17 hex
 * digits; fakes and other clouds' metadata services say other things, never spaces or markup).
 */
const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,255}$/;
/** Tokens are opaque printable text. */
const TOKEN = /^[\x21-\x7e]{1,4096}$/;

export interface ImdsClientOptions {
  /** Base URL (see `imdsEndpoint`). */
  endpoint: string;
  clock: Clock;
  /** Per request. Default 2 000. */
  timeoutMs?: number;
  /** Session token life asked for. Default 21 600 (6 h). */
  tokenTtlSeconds?: number;
  /** Longest answer read. Default 65 536. */
  maxBytes?: number;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
}

export class ImdsClient {
  private token: { value: string; renewAtMs: number } | undefined;
  private pendingToken: Promise<string> | undefined;
  private readonly base: string;

  constructor(private readonly options: ImdsClientOptions) {
    this.base = options.endpoint.replace(/\/+$/, '');
  }

  /** Where this client reads, for logs. */
  get endpoint(): string {
    return this.base;
  }

  /** The machine's EC2 instance id. */
  async instanceId(): Promise<string> {
    const text = await this.get(IMDS_INSTANCE_ID_PATH);
    if (text === undefined) throw new UnavailableError(`reading instance metadata ${IMDS_INSTANCE_ID_PATH}: not found`);
    const id = text.trim();
    if (!INSTANCE_ID.test(id)) throw new InvalidRequestError(`reading instance metadata ${IMDS_INSTANCE_ID_PATH}: not an instance id`);
    return id;
  }

  /** The spot interruption notice, or undefined when there is none. */
  async spotInstanceAction(): Promise<SpotInstanceAction | undefined> {
    const value = await this.getJson(IMDS_SPOT_ACTION_PATH, spotActionSchema);
    return value && { action: value.action, time: new Date(isoToMs(value.time) ?? 0) };
  }

  /** When EC2 issued a rebalance recommendation for the instance, or undefined when it has not. */
  async rebalanceRecommendation(): Promise<Date | undefined> {
    const value = await this.getJson(IMDS_REBALANCE_PATH, rebalanceSchema);
    return value && new Date(isoToMs(value.noticeTime) ?? 0);
  }

  /** The text at `path` (under the endpoint), or undefined for a 404. */
  async get(path: string): Promise<string | undefined> {
    let token = await this.sessionToken();
    let res = await this.request('GET', path, { [TOKEN_HEADER]: token });
    if (res.status === 401) {
      // The token expired or IMDS was restarted: a new session, and the read once more.
      this.token = undefined;
      token = await this.sessionToken();
      res = await this.request('GET', path, { [TOKEN_HEADER]: token });
    }
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new UnavailableError(`reading instance metadata ${path}: HTTP ${res.status}`);
    return res.text;
  }

  private async getJson<T>(path: string, schema: z.ZodType<T>): Promise<T | undefined> {
    const text = await this.get(path);
    if (text === undefined) return undefined;
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new InvalidRequestError(doing(`reading instance metadata ${path}`, err));
    }
    const parsed = schema.safeParse(raw);
    if (!parsed.success) throw new InvalidRequestError(`reading instance metadata ${path}: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'answer'} ${i.message}`).join('; ')}`);
    return parsed.data;
  }

  /** A session token, renewed before it runs out (one request at a time however many reads wait). */
  private async sessionToken(): Promise<string> {
    const now = this.options.clock.nowMs();
    if (this.token && now < this.token.renewAtMs) return this.token.value;
    this.pendingToken ??= this.newToken().finally(() => {
      this.pendingToken = undefined;
    });
    return this.pendingToken;
  }

  private async newToken(): Promise<string> {
    const ttl = this.options.tokenTtlSeconds ?? 21_600;
    const startedMs = this.options.clock.nowMs();
    const res = await this.request('PUT', IMDS_TOKEN_PATH, { [TOKEN_TTL_HEADER]: String(ttl) });
    if (res.status !== 200) throw new UnavailableError(`getting an instance metadata token at ${IMDS_TOKEN_PATH}: HTTP ${res.status}`);
    const value = res.text.trim();
    if (!TOKEN.test(value)) throw new InvalidRequestError(`getting an instance metadata token at ${IMDS_TOKEN_PATH}: the answer is not a token`);
    const lifeMs = ttl * 1_000;
    this.token = { value, renewAtMs: startedMs + lifeMs - Math.min(60_000, lifeMs / 10) };
    return value;
  }

  /** One request, aborted after the timeout, its answer read up to maxBytes (metadata-http.ts). */
  private request(method: 'GET' | 'PUT', path: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
    return metadataRequest({
      method,
      url: `${this.base}${path}`,
      headers,
      action: `${method === 'PUT' ? 'getting an instance metadata token at' : 'reading instance metadata'} ${path}`,
      clock: this.options.clock,
      timeoutMs: this.options.timeoutMs ?? 2_000,
      maxBytes: this.options.maxBytes ?? 65_536,
      fetch: this.options.fetch,
    });
  }
}
