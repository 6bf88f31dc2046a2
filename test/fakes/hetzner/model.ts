/**
 * The fake Hetzner Cloud project: servers, their actions and the placement rules, on an
 * injected clock. The HTTP layer (fake-hcloud.ts) parses requests and hands the model plain
 * values; the model validates them as the API does and answers plain objects, or throws an
 * HcloudError. Time is read only from the `now` passed in.
 *
 * Life cycle (see README.md): a created server is `initializing` for the first half of
 * `actionMs`, then `starting` (with start_after_create, the default), then `running` once its
 * `create_server` action has succeeded at `actionMs` (without start_after_create it stays
 * `initializing` and ends `off`). DELETE makes it `deleting` with a `delete_server` action; when
 * that succeeds, `deleteMs` later, the server is gone (404).
 */
import { randomBytes } from 'node:crypto';
import type { Catalog, ImageSpec, LocationSpec, ServerTypeSpec } from './catalog.js';
import { errors, type InvalidField, invalidInput } from './errors.js';
import { checkLabels, LabelSelectorError, matchesSelector, parseLabelSelector } from './labels.js';

export const SERVER_STATUSES = ['running', 'initializing', 'starting', 'stopping', 'off', 'deleting', 'migrating', 'rebuilding', 'unknown'] as const;
export type ServerStatus = (typeof SERVER_STATUSES)[number];

export type ActionStatus = 'running' | 'success' | 'error';

/** A server as the test sees it (names resolved; times in ms since the epoch). */
export interface FakeServer {
  id: number;
  name: string;
  status: ServerStatus;
  created: number;
  serverType: string;
  serverTypeId: number;
  image: string;
  imageId: number;
  architecture: 'x86' | 'arm';
  location: string;
  datacenter: string;
  networkZone: string;
  labels: Record<string, string>;
  /** As given in the request (IDs or names); not checked against any key list. */
  sshKeys: Array<string | number>;
  networks: number[];
  firewalls: number[];
  publicIpv4: string | null;
  /** The server's /64, e.g. '2001:db8:0:2a::/64'; null without IPv6. */
  publicIpv6: string | null;
  privateNet: Array<{ network: number; ip: string; macAddress: string }>;
  rootPassword: string | null;
  startAfterCreate: boolean;
  createActionId: number;
  deleteActionId: number | null;
}

export interface FakeAction {
  id: number;
  command: string;
  status: ActionStatus;
  progress: number;
  started: number;
  finished: number | null;
  resources: Array<{ id: number; type: string }>;
  error: { code: string; message: string } | null;
}

export interface UnavailableSpec {
  /** A server type name; any type when absent. */
  serverType?: string;
  /** A location name; any location when absent. */
  location?: string;
  /** The error answered; default 'resource_unavailable' (HTTP 412). */
  code?: 'resource_unavailable' | 'placement_error';
}

export interface ListQuery {
  name?: string;
  labelSelector?: string;
  status: string[];
  sort: string[];
  page?: string;
  perPage?: string;
}

export interface Pagination {
  page: number;
  per_page: number;
  previous_page: number | null;
  next_page: number | null;
  last_page: number;
  total_entries: number;
}

interface ServerRecord {
  id: number;
  name: string;
  created: number;
  type: ServerTypeSpec;
  image: ImageSpec;
  location: LocationSpec;
  labels: Record<string, string>;
  sshKeys: Array<string | number>;
  networks: number[];
  firewalls: number[];
  publicIpv4: string | null;
  publicIpv6: string | null;
  privateNet: Array<{ network: number; ip: string; macAddress: string }>;
  rootPassword: string | null;
  startAfterCreate: boolean;
  userData: string;
  createActionId: number;
  /** When the server leaves `initializing`, and when its create action succeeds. */
  halfAt: number;
  readyAt: number;
  pinned?: ServerStatus;
  deleteActionId?: number;
  deleteAt?: number;
}

interface ActionRecord {
  id: number;
  command: string;
  resources: Array<{ id: number; type: string }>;
  started: number;
  /** Progress runs from 0 at progressFrom to 100 at finishAt. */
  progressFrom: number;
  finishAt: number;
}

export interface ModelOptions {
  catalog: Catalog;
  actionMs: number;
  deleteMs: number;
  defaultLocation: string;
  onCreate?: (server: FakeServer & { userData: string }) => void;
  onDelete?: (server: FakeServer) => void;
}

export const MAX_USER_DATA_BYTES = 32 * 1024;
export const MAX_PER_PAGE = 50;
export const DEFAULT_PER_PAGE = 25;
const SORTS = ['id', 'id:asc', 'id:desc', 'name', 'name:asc', 'name:desc', 'created', 'created:asc', 'created:desc'];

/** RFC 1123 host names, at most 63 characters (letters, digits, dashes; dots between labels). */
const HOST_LABEL = String.raw`[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?`;
const HOSTNAME = new RegExp(String.raw`^(?=.{1,63}$)${HOST_LABEL}(?:\.${HOST_LABEL})*$`);

const FIRST_SERVER_ID = 50_000_001;
const FIRST_ACTION_ID = 900_000_001;

export class HcloudModel {
  private readonly servers = new Map<number, ServerRecord>();
  private readonly actions = new Map<number, ActionRecord>();
  private readonly unavailable: Array<Required<Pick<UnavailableSpec, 'code'>> & UnavailableSpec> = [];
  private nextServerId = FIRST_SERVER_ID;
  private nextActionId = FIRST_ACTION_ID;
  private created = 0;

  constructor(private readonly opts: ModelOptions) {
    if (!opts.catalog.location(opts.defaultLocation)) throw new RangeError(`defaultLocation '${opts.defaultLocation}' is not in the catalog`);
  }

  get catalog(): Catalog {
    return this.opts.catalog;
  }

  // ---- placement ---------------------------------------------------------------------------

  setUnavailable(spec: UnavailableSpec): void {
    this.unavailable.push({ ...spec, code: spec.code ?? 'resource_unavailable' });
  }

  /** Withdraws the rules with exactly this server type and location (`{}` withdraws the catch-all rule). */
  setAvailable(spec: Omit<UnavailableSpec, 'code'>): void {
    for (let i = this.unavailable.length - 1; i >= 0; i--) {
      const r = this.unavailable[i]!;
      if (r.serverType === spec.serverType && r.location === spec.location) this.unavailable.splice(i, 1);
    }
  }

  clearUnavailable(): void {
    this.unavailable.length = 0;
  }

  private unavailableFor(type: ServerTypeSpec, location: LocationSpec): 'resource_unavailable' | 'placement_error' | undefined {
    const rule = this.unavailable.find(
      (r) => (r.serverType === undefined || r.serverType === type.name) && (r.location === undefined || r.location === location.name),
    );
    return rule?.code;
  }

  // ---- requests ----------------------------------------------------------------------------

  create(
    body: unknown,
    now: number,
  ): { server: ServerRecord; action: ActionRecord; nextActions: ActionRecord[]; rootPassword: string | null } {
    const b = asObject(body);
    const bad: InvalidField[] = [];
    const fail = (name: string, message: string) => bad.push({ name, messages: [message] });

    const name = b.name;
    if (name === undefined) fail('name', 'Missing data for required field.');
    else if (typeof name !== 'string' || !HOSTNAME.test(name)) fail('name', 'invalid hostname: must be a valid hostname as per RFC 1123, at most 63 characters');
    const typeRef = b.server_type;
    if (typeRef === undefined) fail('server_type', 'Missing data for required field.');
    else if (!isRef(typeRef)) fail('server_type', 'must be an ID or a name');
    const imageRef = b.image;
    if (imageRef === undefined) fail('image', 'Missing data for required field.');
    else if (!isRef(imageRef)) fail('image', 'must be an ID or a name');
    const locationRef = b.location;
    const datacenterRef = b.datacenter;
    if (locationRef !== undefined && !isRef(locationRef)) fail('location', 'must be an ID or a name');
    if (datacenterRef !== undefined && !isRef(datacenterRef)) fail('datacenter', 'must be an ID or a name');
    if (locationRef !== undefined && datacenterRef !== undefined) fail('datacenter', 'must not be used together with location');
    if (b.start_after_create !== undefined && typeof b.start_after_create !== 'boolean') fail('start_after_create', 'Not a valid boolean.');
    if (b.automount !== undefined && typeof b.automount !== 'boolean') fail('automount', 'Not a valid boolean.');
    let labels: Record<string, string> = {};
    if (b.labels !== undefined) {
      const checked = checkLabels(b.labels);
      if (checked.problems.length > 0) bad.push({ name: 'labels', messages: checked.problems });
      labels = checked.labels;
    }
    const userData = b.user_data;
    if (userData !== undefined && userData !== null) {
      if (typeof userData !== 'string') fail('user_data', 'Not a valid string.');
      else if (Buffer.byteLength(userData, 'utf8') > MAX_USER_DATA_BYTES) fail('user_data', `is too long (at most ${MAX_USER_DATA_BYTES} bytes)`);
    }
    const sshKeys = b.ssh_keys;
    if (sshKeys !== undefined && !(Array.isArray(sshKeys) && sshKeys.every(isRef))) fail('ssh_keys', 'must be a list of SSH key IDs or names');
    const networks = b.networks;
    if (networks !== undefined && !(Array.isArray(networks) && networks.every(isId))) fail('networks', 'must be a list of network IDs');
    const volumes = b.volumes;
    if (volumes !== undefined && !(Array.isArray(volumes) && volumes.every(isId))) fail('volumes', 'must be a list of volume IDs');
    if (b.placement_group !== undefined && b.placement_group !== null && !isId(b.placement_group)) fail('placement_group', 'must be a placement group ID');
    const firewalls = b.firewalls;
    if (
      firewalls !== undefined &&
      !(Array.isArray(firewalls) && firewalls.every((f) => f !== null && typeof f === 'object' && isId((f as Record<string, unknown>).firewall)))
    ) {
      fail('firewalls', 'must be a list of {"firewall": ID}');
    }
    const publicNet = b.public_net;
    let enableIpv4 = true;
    let enableIpv6 = true;
    if (publicNet !== undefined && publicNet !== null) {
      if (typeof publicNet !== 'object' || Array.isArray(publicNet)) fail('public_net', 'must be an object');
      else {
        const p = publicNet as Record<string, unknown>;
        for (const k of ['enable_ipv4', 'enable_ipv6'] as const) {
          if (p[k] !== undefined && typeof p[k] !== 'boolean') fail(`public_net.${k}`, 'Not a valid boolean.');
        }
        for (const k of ['ipv4', 'ipv6'] as const) {
          if (p[k] !== undefined && p[k] !== null && !isId(p[k])) fail(`public_net.${k}`, 'must be a Primary IP ID or null');
        }
        enableIpv4 = p.enable_ipv4 !== false;
        enableIpv6 = p.enable_ipv6 !== false;
      }
    }
    if (bad.length > 0) throw invalidInput(bad);

    const catalog = this.opts.catalog;
    const type = catalog.serverType(typeRef as string | number);
    if (!type) throw invalidInput([{ name: 'server_type', messages: ['not found'] }], `server type '${refText(typeRef)}' not found`);
    let location: LocationSpec | undefined;
    if (locationRef !== undefined) {
      location = catalog.location(locationRef as string | number);
      if (!location) throw invalidInput([{ name: 'location', messages: ['not found'] }], `location '${refText(locationRef)}' not found`);
    } else if (datacenterRef !== undefined) {
      location = catalog.locationOfDatacenter(datacenterRef as string | number);
      if (!location) throw invalidInput([{ name: 'datacenter', messages: ['not found'] }], `datacenter '${refText(datacenterRef)}' not found`);
    }
    const image = catalog.image(imageRef as string | number, type.architecture);
    if (!image) throw invalidInput([{ name: 'image', messages: ['not found'] }], `image '${refText(imageRef)}' not found`);
    if (image.architecture !== type.architecture) {
      throw invalidInput(
        [{ name: 'image', messages: ['architecture does not match the server type'] }],
        `image ${image.id} is for ${image.architecture}, server type '${type.name}' is ${type.architecture}`,
      );
    }
    if (location && type.locations && !type.locations.includes(location.name)) {
      throw invalidInput([{ name: 'location', messages: ['unsupported location for server type'] }], 'unsupported location for server type');
    }
    this.sweep(now);
    if (this.byName(name as string)) throw errors.uniqueness('name', 'server name is already used');

    // Placement: the location asked for, else the default location first and then the others.
    if (location) {
      const code = this.unavailableFor(type, location);
      if (code) throw errors.unavailable(code);
    } else {
      const supported = catalog.locations.filter((l) => !type.locations || type.locations.includes(l.name));
      const ordered = [...supported.filter((l) => l.name === this.opts.defaultLocation), ...supported.filter((l) => l.name !== this.opts.defaultLocation)];
      location = ordered.find((l) => this.unavailableFor(type, l) === undefined);
      if (!location) throw errors.unavailable(ordered[0] ? this.unavailableFor(type, ordered[0])! : 'resource_unavailable');
    }

    const id = this.nextServerId++;
    const n = this.created++;
    const actionMs = this.opts.actionMs;
    const startAfterCreate = b.start_after_create !== false;
    const keys = (sshKeys as Array<string | number> | undefined) ?? [];
    const nets = (networks as number[] | undefined) ?? [];
    const rootPassword = keys.length === 0 ? randomBytes(15).toString('base64').replace(/[+/=]/g, 'x') : null;
    const action = this.newAction('create_server', id, now, now, now + actionMs);
    const nextActions = startAfterCreate ? [this.newAction('start_server', id, now, now + actionMs / 2, now + actionMs)] : [];
    const record: ServerRecord = {
      id,
      name: name as string,
      created: now,
      type,
      image,
      location,
      labels,
      sshKeys: keys,
      networks: nets,
      firewalls: ((firewalls as Array<{ firewall: number }> | undefined) ?? []).map((f) => f.firewall),
      // Addresses from the benchmarking (198.18.0.0/15) and documentation (2001:db8::/32) ranges.
      publicIpv4: enableIpv4 ? `198.${18 + ((n >> 16) & 1)}.${(n >> 8) & 255}.${n & 255}` : null,
      publicIpv6: enableIpv6 ? `2001:db8:${(n >> 16).toString(16)}:${(n & 0xffff).toString(16)}::/64` : null,
      privateNet: nets.map((network, i) => ({
        network,
        ip: `10.${i & 255}.${((n + 2) >> 8) & 255}.${(n + 2) & 255}`,
        macAddress: `86:00:00:${hex2(n >> 16)}:${hex2(n >> 8)}:${hex2(n + i)}`,
      })),
      rootPassword,
      startAfterCreate,
      userData: typeof userData === 'string' ? userData : '',
      createActionId: action.id,
      halfAt: now + actionMs / 2,
      readyAt: now + actionMs,
    };
    this.servers.set(id, record);
    this.opts.onCreate?.({ ...this.view(record, now), userData: record.userData });
    return { server: record, action, nextActions, rootPassword };
  }

  list(q: ListQuery, now: number): { servers: ServerRecord[]; pagination: Pagination } {
    this.sweep(now);
    const bad: InvalidField[] = [];
    const page = q.page === undefined ? 1 : positiveInt(q.page);
    if (page === undefined) bad.push({ name: 'page', messages: ['must be a whole number >= 1'] });
    const perPage = q.perPage === undefined ? DEFAULT_PER_PAGE : positiveInt(q.perPage);
    if (perPage === undefined || perPage > MAX_PER_PAGE) bad.push({ name: 'per_page', messages: [`must be a whole number from 1 to ${MAX_PER_PAGE}`] });
    const badStatus = q.status.filter((s) => !(SERVER_STATUSES as readonly string[]).includes(s));
    if (badStatus.length > 0) bad.push({ name: 'status', messages: [`must be one of ${SERVER_STATUSES.join(', ')}`] });
    const badSort = q.sort.filter((s) => !SORTS.includes(s));
    if (badSort.length > 0) bad.push({ name: 'sort', messages: [`must be one of ${SORTS.join(', ')}`] });
    let selector: ReturnType<typeof parseLabelSelector> = [];
    if (q.labelSelector !== undefined) {
      try {
        selector = parseLabelSelector(q.labelSelector);
      } catch (e) {
        if (!(e instanceof LabelSelectorError)) throw e;
        bad.push({ name: 'label_selector', messages: [e.message] });
      }
    }
    if (bad.length > 0) throw invalidInput(bad);

    let servers = [...this.servers.values()];
    if (q.name !== undefined) servers = servers.filter((s) => s.name === q.name);
    if (q.status.length > 0) servers = servers.filter((s) => q.status.includes(this.status(s, now)));
    servers = servers.filter((s) => matchesSelector(s.labels, selector));
    servers.sort(comparator(q.sort));

    const total = servers.length;
    const size = perPage!;
    const lastPage = Math.max(1, Math.ceil(total / size));
    const p = page!;
    return {
      servers: servers.slice((p - 1) * size, p * size),
      pagination: {
        page: p,
        per_page: size,
        previous_page: p > 1 ? p - 1 : null,
        next_page: p < lastPage ? p + 1 : null,
        last_page: lastPage,
        total_entries: total,
      },
    };
  }

  get(id: number, now: number): ServerRecord {
    this.sweep(now);
    const record = this.servers.get(id);
    if (!record) throw errors.notFound(`server with ID '${id}' not found`);
    return record;
  }

  update(id: number, body: unknown, now: number): ServerRecord {
    const record = this.get(id, now);
    const b = asObject(body);
    const bad: InvalidField[] = [];
    if (b.name !== undefined && (typeof b.name !== 'string' || !HOSTNAME.test(b.name))) {
      bad.push({ name: 'name', messages: ['invalid hostname: must be a valid hostname as per RFC 1123, at most 63 characters'] });
    }
    let labels: Record<string, string> | undefined;
    if (b.labels !== undefined) {
      const checked = checkLabels(b.labels);
      if (checked.problems.length > 0) bad.push({ name: 'labels', messages: checked.problems });
      labels = checked.labels;
    }
    if (bad.length > 0) throw invalidInput(bad);
    if (typeof b.name === 'string' && b.name !== record.name) {
      if (this.byName(b.name)) throw errors.uniqueness('name', 'server name is already used');
      record.name = b.name;
    }
    if (labels !== undefined) record.labels = labels;
    return record;
  }

  /** Starts deleting (or answers the delete already under way). */
  delete(id: number, now: number): ActionRecord {
    const record = this.get(id, now);
    if (record.deleteActionId !== undefined) return this.actions.get(record.deleteActionId)!;
    const action = this.newAction('delete_server', id, now, now, now + this.opts.deleteMs);
    record.deleteActionId = action.id;
    record.deleteAt = now + this.opts.deleteMs;
    this.opts.onDelete?.(this.view(record, now));
    return action;
  }

  action(id: number): ActionRecord {
    const action = this.actions.get(id);
    if (!action) throw errors.notFound(`action with ID '${id}' not found`);
    return action;
  }

  /** An action of a server; the server may be gone (Hetzner keeps the actions). */
  serverAction(serverId: number, actionId: number): ActionRecord {
    const action = this.actions.get(actionId);
    if (!action?.resources.some((r) => r.type === 'server' && r.id === serverId)) throw errors.notFound(`action with ID '${actionId}' not found`);
    return action;
  }

  // ---- introspection and controls ------------------------------------------------------------

  all(now: number): ServerRecord[] {
    this.sweep(now);
    return [...this.servers.values()];
  }

  find(id: number, now: number): ServerRecord | undefined {
    this.sweep(now);
    return this.servers.get(id);
  }

  byName(name: string): ServerRecord | undefined {
    for (const s of this.servers.values()) if (s.name === name) return s;
    return undefined;
  }

  /** Pins a server in a status (no timed transition moves it) until it is deleted. */
  setStatus(id: number, status: ServerStatus, now: number): ServerRecord {
    const record = this.find(id, now);
    if (!record) throw new Error(`FakeHcloud: no server ${id}`);
    record.pinned = status;
    return record;
  }

  status(s: ServerRecord, now: number): ServerStatus {
    if (s.deleteAt !== undefined) return 'deleting';
    if (s.pinned !== undefined) return s.pinned;
    if (now < s.halfAt) return 'initializing';
    if (now < s.readyAt) return s.startAfterCreate ? 'starting' : 'initializing';
    return s.startAfterCreate ? 'running' : 'off';
  }

  view(s: ServerRecord, now: number): FakeServer {
    return {
      id: s.id,
      name: s.name,
      status: this.status(s, now),
      created: s.created,
      serverType: s.type.name,
      serverTypeId: s.type.id,
      image: s.image.name,
      imageId: s.image.id,
      architecture: s.type.architecture,
      location: s.location.name,
      datacenter: s.location.datacenter.name,
      networkZone: s.location.networkZone,
      labels: { ...s.labels },
      sshKeys: [...s.sshKeys],
      networks: [...s.networks],
      firewalls: [...s.firewalls],
      publicIpv4: s.publicIpv4,
      publicIpv6: s.publicIpv6,
      privateNet: s.privateNet.map((p) => ({ ...p })),
      rootPassword: s.rootPassword,
      startAfterCreate: s.startAfterCreate,
      createActionId: s.createActionId,
      deleteActionId: s.deleteActionId ?? null,
    };
  }

  actionView(a: ActionRecord, now: number): FakeAction {
    const done = now >= a.finishAt;
    const span = a.finishAt - a.progressFrom;
    const progress = done ? 100 : span <= 0 || now <= a.progressFrom ? 0 : Math.min(99, Math.floor((100 * (now - a.progressFrom)) / span));
    return {
      id: a.id,
      command: a.command,
      status: done ? 'success' : 'running',
      progress,
      started: a.started,
      finished: done ? a.finishAt : null,
      resources: a.resources.map((r) => ({ ...r })),
      error: null,
    };
  }

  /** Drops servers whose delete action has finished. */
  private sweep(now: number): void {
    for (const [id, s] of this.servers) if (s.deleteAt !== undefined && now >= s.deleteAt) this.servers.delete(id);
  }

  private newAction(command: string, serverId: number, started: number, progressFrom: number, finishAt: number): ActionRecord {
    const action: ActionRecord = { id: this.nextActionId++, command, resources: [{ id: serverId, type: 'server' }], started, progressFrom, finishAt };
    this.actions.set(action.id, action);
    return action;
  }
}

export type { ActionRecord, ServerRecord };

function asObject(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalidInput([{ name: 'body', messages: ['must be a JSON object'] }]);
  return body as Record<string, unknown>;
}

function refText(v: unknown): string {
  return typeof v === 'string' || typeof v === 'number' ? String(v) : JSON.stringify(v);
}

function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

function isRef(v: unknown): v is string | number {
  return isId(v) || (typeof v === 'string' && v.length > 0);
}

function positiveInt(text: string): number | undefined {
  if (!/^[0-9]+$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && Number.isSafeInteger(n) ? n : undefined;
}

function hex2(n: number): string {
  return (n & 255).toString(16).padStart(2, '0');
}

function comparator(sorts: readonly string[]): (a: ServerRecord, b: ServerRecord) => number {
  const keys = (sorts.length > 0 ? sorts : ['id']).map((s) => {
    const [field, dir] = s.split(':') as [string, string | undefined];
    return { field, sign: dir === 'desc' ? -1 : 1 };
  });
  return (a, b) => {
    for (const { field, sign } of keys) {
      const d = field === 'name' ? a.name.localeCompare(b.name) : field === 'created' ? a.created - b.created : a.id - b.id;
      if (d !== 0) return d * sign;
    }
    return a.id - b.id;
  };
}
