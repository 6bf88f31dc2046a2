/**
 * A fake of Hetzner's server metadata service (docs.hetzner.cloud, Overview → Server Metadata;
 * on a server at http://169.254.169.254/hetzner/v1/metadata), serving many servers from one
 * loopback server. Each server has its own base URL, `endpointFor(id)` =
 * `http://127.0.0.1:<port>/<id>`, standing in for http://169.254.169.254; the agent appends the
 * usual paths:
 *
 *   /hetzner/v1/metadata                    a YAML summary (availability-zone, hostname,
 *                                           instance-id, public-ipv4, region)
 *   /hetzner/v1/metadata/hostname           text: the server's name
 *   /hetzner/v1/metadata/instance-id        number: the server's ID
 *   /hetzner/v1/metadata/public-ipv4        text (404 without a public IPv4)
 *   /hetzner/v1/metadata/availability-zone  text: the datacenter, e.g. 'fsn1-dc14'
 *   /hetzner/v1/metadata/region             text: the network zone, e.g. 'eu-central'
 *   /hetzner/v1/metadata/private-networks   YAML list ('[]' when none)
 *   /hetzner/v1/userdata                    the user data as given at creation
 *
 * No token or header is needed (unlike IMDSv2). Anything else, and any server not added (or
 * removed), is 404. Answers are text/plain.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer } from '../loopback.js';
import { DEFAULT_LOCATIONS, type LocationSpec } from './catalog.js';

export interface FakeHetznerMetadataOptions {
  /** The clock (ms since the epoch) stamped on `requests`; default `Date.now`. */
  now?: () => number;
  /** Locations known by name, to derive availability-zone and region; default catalog.ts's. */
  locations?: readonly LocationSpec[];
}

export interface MetadataServer {
  /** The server's name (metadata `hostname`). */
  hostname: string;
  /** A location name (e.g. 'fsn1'): gives availability-zone (its datacenter) and region (its network zone). */
  location: string;
  /** Override the availability zone derived from the location. */
  availabilityZone?: string;
  /** Override the region derived from the location. */
  region?: string;
  publicIpv4?: string | null;
  privateNetworks?: ReadonlyArray<{ ip: string; networkId: number; networkName?: string; network?: string; subnet?: string; gateway?: string; macAddress?: string }>;
  /** What /hetzner/v1/userdata answers; '' by default. */
  userData?: string;
}

export interface MetadataRequest {
  at: number;
  method: string;
  /** The server the request was for (the first path segment). */
  serverId: string;
  /** The path under the server's base URL, e.g. '/hetzner/v1/metadata/instance-id'. */
  path: string;
  status: number;
}

interface Entry {
  hostname: string;
  availabilityZone: string;
  region: string;
  publicIpv4: string | null;
  privateNetworks: NonNullable<MetadataServer['privateNetworks']>;
  userData: string;
}

export const METADATA_PATH = '/hetzner/v1/metadata';
export const USERDATA_PATH = '/hetzner/v1/userdata';

export class FakeHetznerMetadata {
  /** Every request, in arrival order. */
  readonly requests: MetadataRequest[] = [];

  private readonly now: () => number;
  private readonly locations: readonly LocationSpec[];
  private readonly entries = new Map<string, Entry>();
  private readonly http = new LoopbackServer('FakeHetznerMetadata', (req, res) => this.onRequest(req, res));

  constructor(options: FakeHetznerMetadataOptions = {}) {
    this.now = options.now ?? Date.now;
    this.locations = options.locations ?? DEFAULT_LOCATIONS;
  }

  /** Listens on 127.0.0.1 (an ephemeral port); answers the server's base, `http://127.0.0.1:<port>`. */
  async start(): Promise<string> {
    return this.http.start();
  }

  get base(): string {
    return this.http.origin;
  }

  /** The server's stand-in for http://169.254.169.254 (the agent appends /hetzner/v1/metadata/…). */
  endpointFor(serverId: number | string): string {
    return `${this.base}/${encodeURIComponent(String(serverId))}`;
  }

  async close(): Promise<void> {
    await this.http.close();
  }

  /** Serves metadata for a server (replacing what was there). An unknown location needs availabilityZone and region. */
  addServer(serverId: number | string, info: MetadataServer): void {
    const location = this.locations.find((l) => l.name === info.location);
    const availabilityZone = info.availabilityZone ?? location?.datacenter.name;
    const region = info.region ?? location?.networkZone;
    if (availabilityZone === undefined || region === undefined) {
      throw new Error(`FakeHetznerMetadata: unknown location '${info.location}'; give availabilityZone and region`);
    }
    this.entries.set(String(serverId), {
      hostname: info.hostname,
      availabilityZone,
      region,
      publicIpv4: info.publicIpv4 ?? null,
      privateNetworks: info.privateNetworks ?? [],
      userData: info.userData ?? '',
    });
  }

  /** Stops serving a server: its requests get 404. */
  removeServer(serverId: number | string): void {
    this.entries.delete(String(serverId));
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    req.on('end', () => {
      const method = req.method ?? 'GET';
      const url = new URL(req.url ?? '/', 'http://metadata.invalid');
      const match = /^\/([^/]+)(\/.*)?$/.exec(url.pathname);
      const serverId = match ? decodeURIComponent(match[1]!) : '';
      const path = (match?.[2] ?? '/').replace(/\/+$/, '') || '/';
      const entry = this.entries.get(serverId);
      const item = entry && (method === 'GET' || method === 'HEAD') ? this.item(serverId, entry, path) : undefined;
      const status = item === undefined ? (entry && method !== 'GET' && method !== 'HEAD' ? 405 : 404) : 200;
      this.requests.push({ at: this.now(), method, serverId, path, status });
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(method === 'HEAD' ? undefined : (item ?? `${status === 404 ? 'not found' : 'method not allowed'}\n`));
    });
    req.on('error', () => res.destroy());
  }

  private item(serverId: string, e: Entry, path: string): string | undefined {
    switch (path) {
      case METADATA_PATH:
        return [
          `availability-zone: ${e.availabilityZone}`,
          `hostname: ${e.hostname}`,
          `instance-id: ${serverId}`,
          ...(e.publicIpv4 !== null ? [`public-ipv4: ${e.publicIpv4}`] : []),
          `region: ${e.region}`,
          '',
        ].join('\n');
      case `${METADATA_PATH}/hostname`:
        return e.hostname;
      case `${METADATA_PATH}/instance-id`:
        return serverId;
      case `${METADATA_PATH}/public-ipv4`:
        return e.publicIpv4 ?? undefined;
      case `${METADATA_PATH}/availability-zone`:
        return e.availabilityZone;
      case `${METADATA_PATH}/region`:
        return e.region;
      case `${METADATA_PATH}/private-networks`:
        return privateNetworksYaml(e.privateNetworks);
      case USERDATA_PATH:
        return e.userData;
      default:
        return undefined;
    }
  }
}

function privateNetworksYaml(nets: Entry['privateNetworks']): string {
  if (nets.length === 0) return '[]\n';
  return nets
    .map((n, i) =>
      [
        `- ip: ${n.ip}`,
        '  alias_ips: []',
        `  interface_num: ${i + 1}`,
        `  mac_address: ${n.macAddress ?? `86:00:00:00:00:${(i + 1).toString(16).padStart(2, '0')}`}`,
        `  network_id: ${n.networkId}`,
        `  network_name: ${n.networkName ?? `network-${n.networkId}`}`,
        `  network: ${n.network ?? '10.0.0.0/8'}`,
        `  subnet: ${n.subnet ?? '10.0.0.0/24'}`,
        `  gateway: ${n.gateway ?? '10.0.0.1'}`,
      ].join('\n'),
    )
    .join('\n')
    .concat('\n');
}
