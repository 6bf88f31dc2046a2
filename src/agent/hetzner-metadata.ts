/**
 * A Hetzner Cloud server metadata client on `fetch`: what an agent on a Hetzner Cloud server reads
 * about its machine — its server id, the bootstrap exchange's proof (bootstrap.ts). Hetzner's
 * metadata service announces no terminations (no spot market, no retirement notices): with
 * `metadata: hetzner` the agent runs no notice watcher (notice-watcher.ts).
 *
 * Contracts:
 * - Requests. Plain GETs under `{endpoint}/hetzner/v1/metadata/` (`instance-id`: the server's
 *   numeric id as text; `hostname`, `region`, `availability-zone` are there too). No session and
 *   no header: the service answers only the server itself, on its link-local address.
 * - Endpoint. `endpoint` is a base URL and may carry a path prefix (`http://host:port/prefix`):
 *   paths are appended to it. `hetznerMetadataEndpoint()` picks the agent config's
 *   `hetznerMetadata.endpoint`, else the environment's DROVER_HETZNER_METADATA_ENDPOINT, else
 *   http://169.254.169.254.
 * - Bounds. Every request is aborted after `timeoutMs` on the injected clock (default 2 s: the
 *   service is local to the host, a slow answer is a broken one); an answer longer than
 *   `maxBytes` (default 4 KiB: every leaf is a line) is refused; the server id must be a positive
 *   integer (decimal, no sign, no leading zero, at most 2^63 - 1: Hetzner's ids are int64) and is
 *   refused with an error naming the path otherwise.
 * - Answers. A 404 is "nothing there" (`get` gives `undefined`; `instanceId()` an
 *   UnavailableError, retryable); any other status but 200 is an UnavailableError, an answer that
 *   does not validate an InvalidRequestError, a timeout a TimeoutError, an unreachable service
 *   an UnavailableError — each "reading Hetzner server metadata <path>: cause".
 */
import type { Clock } from '../clock/index.js';
import { InvalidRequestError, UnavailableError } from '../errors/index.js';
import { metadataRequest } from './metadata-http.js';

export const DEFAULT_HETZNER_METADATA_ENDPOINT = 'http://169.254.169.254';
export const HETZNER_METADATA_ENDPOINT_ENV = 'DROVER_HETZNER_METADATA_ENDPOINT';
export const HETZNER_METADATA_PATH = '/hetzner/v1/metadata';
export const HETZNER_INSTANCE_ID_PATH = `${HETZNER_METADATA_PATH}/instance-id`;

/** Hetzner Cloud's ids are int64: the largest a server id can be. */
const MAX_SERVER_ID = 2n ** 63n - 1n;
const SERVER_ID = /^[1-9][0-9]{0,18}$/;

/** Whether `text` is a Hetzner Cloud server id: a positive decimal integer that fits an int64, written plainly. */
export function isHetznerServerId(text: string): boolean {
  return SERVER_ID.test(text) && BigInt(text) <= MAX_SERVER_ID;
}

/** The metadata service's base URL: the agent config's, else the environment's, else the link-local default. */
export function hetznerMetadataEndpoint(configured: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[HETZNER_METADATA_ENDPOINT_ENV]?.trim();
  return configured ?? (fromEnv ? fromEnv : DEFAULT_HETZNER_METADATA_ENDPOINT);
}

export interface HetznerMetadataClientOptions {
  /** Base URL (see `hetznerMetadataEndpoint`). */
  endpoint: string;
  clock: Clock;
  /** Per request. Default 2 000. */
  timeoutMs?: number;
  /** Longest answer read. Default 4 096. */
  maxBytes?: number;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
}

export class HetznerMetadataClient {
  private readonly base: string;

  constructor(private readonly options: HetznerMetadataClientOptions) {
    this.base = options.endpoint.replace(/\/+$/, '');
  }

  /** Where this client reads, for logs. */
  get endpoint(): string {
    return this.base;
  }

  /** The machine's Hetzner Cloud server id (decimal digits). */
  async instanceId(): Promise<string> {
    const text = await this.get(HETZNER_INSTANCE_ID_PATH);
    if (text === undefined) throw new UnavailableError(`reading Hetzner server metadata ${HETZNER_INSTANCE_ID_PATH}: not found`);
    const id = text.trim();
    if (!isHetznerServerId(id)) throw new InvalidRequestError(`reading Hetzner server metadata ${HETZNER_INSTANCE_ID_PATH}: not a server id (a positive integer)`);
    return id;
  }

  /** The text at `path` (under the endpoint), or undefined for a 404. */
  async get(path: string): Promise<string | undefined> {
    const action = `reading Hetzner server metadata ${path}`;
    const res = await metadataRequest({
      method: 'GET',
      url: `${this.base}${path}`,
      action,
      clock: this.options.clock,
      timeoutMs: this.options.timeoutMs ?? 2_000,
      maxBytes: this.options.maxBytes ?? 4_096,
      fetch: this.options.fetch,
    });
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new UnavailableError(`${action}: HTTP ${res.status}`);
    return res.text;
  }
}
