/**
 * The Hetzner Cloud provider (`provider.kind: hetzner`): each Drover instance is one Hetzner
 * server, found again by its `drover/*` labels. Hetzner has no auto-scaling groups; this and the
 * reconciler are one.
 *
 * Contracts (the Provider contract, src/providers/types.ts, as Hetzner lets it be kept):
 * - create: the server's **name is the Drover instance id** (names are unique per project), so a
 *   create retried after a timeout is answered `uniqueness_error` and finds the server by name
 *   instead of making a second. A server of that name that does not carry the instance id label
 *   is someone else's: a permanent error. Locations are tried from the least used by the group
 *   (spread kept balanced, as an auto-scaling group balances zones, also for replacements), and
 *   in each the server types in order: `resource_unavailable` and `placement_error` move to the
 *   next server type, then to the next location.
 *   `launchDetail` says what was created and what was tried first.
 * - The create's action runs on at Hetzner; it is not waited for (the group's worker is free at
 *   once). `status` follows it: while it runs the server is `pending`; if it failed, the server
 *   is `terminated` (Drover replaces it).
 * - status: Hetzner's statuses mapped onto Drover's; a server Hetzner does not have is
 *   InstanceNotFoundError (Hetzner's API is consistent: no grace window is needed).
 * - delete: DELETE returns an action; the server leaves `list` at once (a `deleting` server is not
 *   live) and Hetzner removes it when the action completes. Not found is InstanceNotFoundError.
 * - setTags: labels are replaced as a whole by PUT, so one server's label writes are serialised
 *   and merged with its current labels.
 */
import type { Clock } from '../../clock/index.js';
import { hetznerTemplateSchema, type HetznerTemplate } from '../../config/index.js';
import { InstanceNotFoundError, InvalidRequestError, PermanentError, ProviderError, ThrottledError } from '../../errors/index.js';
import type { Logger } from '../../logging/index.js';
import { KeyedLock } from '../../util/keyed-lock.js';
import { userDataForCreate } from '../cloud-init/index.js';
import { TAG, type AgentBootstrap, type Provider, type ProviderCreateRequest, type ProviderInstance, type ProviderStatus, type RateLimitState } from '../types.js';
import { HcloudError, type HcloudClient, type HcloudServer } from './client.js';
import { labelSelector, labelsFromTags, tagsFromLabels } from './labels.js';

const STATUS: Record<string, ProviderStatus> = {
  initializing: 'pending',
  starting: 'pending',
  running: 'running',
  stopping: 'stopping',
  off: 'stopped',
  deleting: 'deleting',
  migrating: 'pending',
  rebuilding: 'repairing',
};

/** No room for this type in this location now; another may have it. */
const UNAVAILABLE = new Set(['resource_unavailable', 'placement_error']);
/** Refusals a retry cannot change, with what to fix. */
const PERMANENT: Record<string, string> = {
  invalid_input: 'check the template',
  forbidden: 'the API token lacks a permission (it needs read and write)',
  unauthorized: 'the API token (HCLOUD_TOKEN) was refused',
  token_readonly: 'the API token is read-only; Drover needs a read and write token',
  resource_limit_exceeded: 'the project\'s server limit is reached (ask Hetzner to raise it)',
  protected: 'the server is protected against deletion',
  json_error: 'Drover sent a body Hetzner could not read (a bug)',
};

/** Hetzner server names: valid hostnames, at most 63 characters. */
const SERVER_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

export interface HetznerProviderOptions {
  client: HcloudClient;
  clock: Clock;
  logger?: Logger;
  /** The instance's user data; default: the cloud-init agent bootstrap with the template's own. */
  renderUserData?: (req: ProviderCreateRequest, template: HetznerTemplate) => string | undefined;
  agentInstall?: string;
}

/** What Drover's error catalogue makes of a Hetzner refusal of `action`. */
export function fromHcloudError(action: string, err: unknown, providerId?: string): Error {
  if (!(err instanceof HcloudError)) return err instanceof Error ? err : new ProviderError(`${action}: ${String(err)}`);
  if (err.hcloudCode === 'rate_limit_exceeded' || err.status === 429) return new ThrottledError(`${action} (rate_limit_exceeded)`);
  if (err.hcloudCode === 'not_found' && providerId) return new InstanceNotFoundError(providerId, err);
  const hint = PERMANENT[err.hcloudCode];
  if (hint) return new PermanentError(new ProviderError(`${action}: ${err.message} (${hint})`, { retryable: false, cause: err }));
  return new ProviderError(`${action}: ${err.message}`, { retryable: err.retryable, cause: err });
}

/**
 * User data for a Hetzner server: the agent bootstrap (metadata: hetzner, so the agent proves its
 * server id from Hetzner's metadata service) with the template's own.
 */
export function hetznerUserData(install?: string): (req: ProviderCreateRequest, template: HetznerTemplate) => string | undefined {
  return (req, template) => userDataForCreate(req, template, { metadata: 'hetzner', install });
}

export class HetznerProvider implements Provider {
  readonly kind = 'hetzner';
  /** User data is readable on the server and through the API: a one-time token, not a credential. */
  readonly agentBootstrap: AgentBootstrap = 'token';
  private readonly client: HcloudClient;
  private readonly logger: Logger | undefined;
  private readonly renderUserData: (req: ProviderCreateRequest, template: HetznerTemplate) => string | undefined;
  /** Create actions still running, by server id (followed by `status`). */
  private readonly creating = new Map<number, number>();
  /** Where each known server of a group is (group key → server id → location), for the spread. */
  private readonly placement = new Map<string, Map<number, string>>();
  /** Locations being tried by creates in flight (group key → instance id → location): concurrent creates spread too. */
  private readonly reserved = new Map<string, Map<string, string>>();
  private readonly labelLock = new KeyedLock();
  /** Network and firewall ids by name (`networks/<name>`), looked up once. */
  private readonly names = new Map<string, number>();

  constructor(options: HetznerProviderOptions) {
    this.client = options.client;
    this.logger = options.logger;
    this.renderUserData = options.renderUserData ?? hetznerUserData(options.agentInstall);
  }

  watchRateLimit(listener: (state: RateLimitState) => void): void {
    this.client.setRateLimitListener(listener);
  }

  async create(req: ProviderCreateRequest): Promise<ProviderInstance> {
    const key = req.idempotencyKey;
    const parsed = hetznerTemplateSchema.safeParse(req.template);
    if (!parsed.success) throw new PermanentError(new InvalidRequestError(`creating ${key}: the template is not a Hetzner one: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(template)'}: ${i.message}`).join('; ')}`));
    const template = parsed.data;
    if (!SERVER_NAME.test(key)) throw new PermanentError(new InvalidRequestError(`creating ${key}: the instance id is not a valid Hetzner server name`));
    const labels = { ...(template.labels ?? {}), ...labelsFromTags(req.tags) };
    const networks = template.networks ? await this.resolve('networks', template.networks, key) : undefined;
    const firewalls = template.firewalls ? await this.resolve('firewalls', template.firewalls, key) : undefined;
    const userData = this.renderUserData(req, template);
    const group = groupKey(req.tags);
    const tried: string[] = [];
    // The location the spread wants first, with each server type in turn, then the next location.
    for (const location of this.locationOrder(group, template.locations)) {
      for (const serverType of template.serverTypes) {
        const where = `${serverType}${location ? ` in ${location}` : ''}`;
        this.reserve(group, key, location);
        try {
          const { server, action } = await this.client.createServer({
            name: key,
            server_type: serverType,
            image: String(template.image),
            ...(location ? { location } : {}),
            ...(template.sshKeys ? { ssh_keys: template.sshKeys.map(String) } : {}),
            ...(networks ? { networks } : {}),
            ...(firewalls ? { firewalls: firewalls.map((firewall) => ({ firewall })) } : {}),
            labels,
            ...(userData !== undefined ? { user_data: userData } : {}),
            start_after_create: true,
          });
          if (action.status === 'running') this.creating.set(server.id, action.id);
          this.place(group, server);
          this.logger?.info({ instanceId: key, providerId: server.id, serverType, location: location ?? null, tried }, 'hetzner server created');
          return { ...this.toInstance(server), launchDetail: tried.length > 0 ? `${where}; tried first: ${tried.join('; ')}` : where };
        } catch (err) {
          if (err instanceof HcloudError && err.hcloudCode === 'uniqueness_error') return this.findByName(key);
          if (err instanceof HcloudError && UNAVAILABLE.has(err.hcloudCode)) {
            tried.push(`${where}: ${err.hcloudCode}`);
            continue;
          }
          throw fromHcloudError(`creating server ${key} (${where})`, err);
        } finally {
          this.reserve(group, key, undefined);
        }
      }
    }
    throw new ProviderError(`creating server ${key}: no server type and location available: ${tried.join('; ')}`, { retryable: true });
  }

  /** Ids for networks or firewalls given by name or id; names are looked up once and kept. */
  private async resolve(kind: 'networks' | 'firewalls', refs: ReadonlyArray<string | number>, key: string): Promise<number[]> {
    const ids: number[] = [];
    for (const ref of refs) {
      if (typeof ref === 'number') {
        ids.push(ref);
        continue;
      }
      const cacheKey = `${kind}/${ref}`;
      let id = this.names.get(cacheKey);
      if (id === undefined) {
        const found = await this.client.idByName(kind, ref).catch((err: unknown) => {
          throw fromHcloudError(`creating server ${key}: looking up ${kind} "${ref}"`, err);
        });
        if (found === null) throw new PermanentError(new InvalidRequestError(`creating server ${key}: the project has no ${kind === 'networks' ? 'network' : 'firewall'} named "${ref}" (check templates.*.${kind})`));
        id = found;
        this.names.set(cacheKey, id);
      }
      ids.push(id);
    }
    return ids;
  }

  /** The server an earlier attempt created under this name. */
  private async findByName(key: string): Promise<ProviderInstance> {
    const [server] = await this.client.listServers({ name: key }).catch((err: unknown) => {
      throw fromHcloudError(`finding server ${key}`, err);
    });
    if (!server) throw new ProviderError(`creating server ${key}: the name is taken but no server has it (deleted meanwhile); retrying`, { retryable: true });
    const tags = tagsFromLabels(server.labels);
    if (tags[TAG.instanceId] !== key) throw new PermanentError(new InvalidRequestError(`creating server ${key}: a server of this name exists that Drover did not create (no matching ${TAG.instanceId} label); rename or delete it`));
    this.place(groupKey(tags), server);
    return { ...this.toInstance(server), launchDetail: 'found by its name (an earlier attempt created it)' };
  }

  async status(providerId: string): Promise<ProviderStatus> {
    const id = serverId(providerId);
    const server = await this.client.getServer(id).catch((err: unknown) => {
      throw fromHcloudError(`getting server ${providerId}`, err, providerId);
    });
    if (!server) {
      this.forget(id);
      throw new InstanceNotFoundError(providerId);
    }
    const actionId = this.creating.get(id);
    if (actionId !== undefined) {
      const action = await this.client.getAction(actionId).catch((err: unknown) => {
        throw fromHcloudError(`following the create of server ${providerId}`, err);
      });
      if (action.status !== 'running') this.creating.delete(id);
      if (action.status === 'error') {
        this.logger?.warn({ providerId, code: action.error?.code ?? null, message: action.error?.message ?? null }, 'hetzner server create failed');
        return 'terminated';
      }
      if (action.status === 'running') return 'pending';
    }
    return statusOf(server);
  }

  async list(tags: Record<string, string>): Promise<ProviderInstance[]> {
    const servers = await this.client.listServers({ labelSelector: labelSelector(tags) }).catch((err: unknown) => {
      throw fromHcloudError('listing servers', err);
    });
    const out: ProviderInstance[] = [];
    const live = new Set<number>();
    for (const server of servers) {
      if (server.status === 'deleting') continue;
      live.add(server.id);
      this.place(groupKey(tagsFromLabels(server.labels)), server);
      out.push(this.toInstance(server));
    }
    // A listing of the whole shard (Drover's resync) also tells which servers are gone.
    if (tags[TAG.group] === undefined && tags[TAG.instanceId] === undefined) {
      for (const servers of this.placement.values()) for (const id of servers.keys()) if (!live.has(id)) servers.delete(id);
    }
    return out;
  }

  async delete(providerId: string): Promise<void> {
    const id = serverId(providerId);
    try {
      await this.client.deleteServer(id);
    } catch (err) {
      throw fromHcloudError(`deleting server ${providerId}`, err, providerId);
    }
    this.forget(id);
  }

  /** A server that is gone (deleted, or Hetzner has none) counts for no location. */
  private forget(id: number): void {
    this.creating.delete(id);
    for (const servers of this.placement.values()) servers.delete(id);
  }

  async setTags(providerId: string, tags: Record<string, string>): Promise<void> {
    const id = serverId(providerId);
    await this.labelLock.run(providerId, async () => {
      const server = await this.client.getServer(id).catch((err: unknown) => {
        throw fromHcloudError(`getting server ${providerId}`, err, providerId);
      });
      if (!server) throw new InstanceNotFoundError(providerId);
      await this.client.setLabels(id, { ...server.labels, ...labelsFromTags(tags) }).catch((err: unknown) => {
        throw fromHcloudError(`labelling server ${providerId}`, err, providerId);
      });
    });
  }

  /** The template's locations, the group's least used first (ties in the template's order). */
  private locationOrder(group: string, locations: readonly string[] | undefined): (string | undefined)[] {
    if (!locations || locations.length === 0) return [undefined];
    const used = new Map<string, number>(locations.map((l) => [l, 0]));
    const inFlight = this.reserved.get(group)?.values() ?? [];
    for (const location of [...(this.placement.get(group)?.values() ?? []), ...inFlight]) if (used.has(location)) used.set(location, (used.get(location) ?? 0) + 1);
    return [...locations].sort((a, b) => (used.get(a) ?? 0) - (used.get(b) ?? 0) || locations.indexOf(a) - locations.indexOf(b));
  }

  /** Marks (or, with no location, clears) the location a create of `key` is trying. */
  private reserve(group: string, key: string, location: string | undefined): void {
    const entries = this.reserved.get(group) ?? new Map<string, string>();
    if (location) entries.set(key, location);
    else entries.delete(key);
    if (entries.size > 0) this.reserved.set(group, entries);
    else this.reserved.delete(group);
  }

  private place(group: string, server: HcloudServer): void {
    const location = server.datacenter?.location.name;
    if (!location) return;
    const servers = this.placement.get(group) ?? new Map<number, string>();
    servers.set(server.id, location);
    this.placement.set(group, servers);
  }

  private toInstance(server: HcloudServer): ProviderInstance {
    return { providerId: String(server.id), status: statusOf(server), tags: tagsFromLabels(server.labels) };
  }
}

function statusOf(server: HcloudServer): ProviderStatus {
  const status = STATUS[server.status];
  if (!status) throw new ProviderError(`Hetzner reported server ${server.id} in an unknown status "${server.status}"`, { retryable: true });
  return status;
}

function serverId(providerId: string): number {
  const id = Number(providerId);
  if (!Number.isSafeInteger(id) || id <= 0) throw new InstanceNotFoundError(providerId);
  return id;
}

function groupKey(tags: Record<string, string>): string {
  return `${tags[TAG.tenant] ?? ''}/${tags[TAG.group] ?? ''}`;
}
