/**
 * The JSON the fake answers, shaped as the Hetzner Cloud API reference shows its objects
 * (docs.hetzner.cloud: "Get a Server" response sample for the Server object, "Get an Action"
 * for the Action object, Overview → Pagination for `meta.pagination`). Times are ISO 8601 to
 * the second with an explicit offset, as the samples write them: "2016-01-30T23:55:00+00:00".
 */
import type { ImageSpec, LocationSpec, ServerTypeSpec } from './catalog.js';
import type { FakeAction, FakeServer } from './model.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** 2016-01-30T23:55:00+00:00 */
export function hcloudTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}+00:00`;
}

export function actionJson(a: FakeAction): Json {
  return {
    id: a.id,
    command: a.command,
    status: a.status,
    progress: a.progress,
    started: hcloudTime(a.started),
    finished: a.finished === null ? null : hcloudTime(a.finished),
    resources: a.resources.map((r) => ({ id: r.id, type: r.type })),
    error: a.error === null ? null : { code: a.error.code, message: a.error.message },
  };
}

function serverTypeJson(t: ServerTypeSpec): Json {
  return {
    id: t.id,
    name: t.name,
    description: t.name.toUpperCase(),
    cores: t.cores,
    memory: t.memory,
    disk: t.disk,
    deprecated: false,
    deprecation: null,
    prices: [],
    storage_type: 'local',
    cpu_type: t.cpuType,
    architecture: t.architecture,
  };
}

function locationJson(l: LocationSpec): Json {
  return {
    id: l.id,
    name: l.name,
    description: l.description,
    country: l.country,
    city: l.city,
    latitude: l.latitude,
    longitude: l.longitude,
    network_zone: l.networkZone,
  };
}

function imageJson(i: ImageSpec): Json {
  return {
    id: i.id,
    type: 'system',
    status: 'available',
    name: i.name,
    description: i.description,
    image_size: null,
    disk_size: 5,
    created: '2024-04-25T00:00:00+00:00',
    created_from: null,
    bound_to: null,
    os_flavor: i.osFlavor,
    os_version: i.osVersion,
    rapid_deploy: true,
    protection: { delete: false },
    deprecated: null,
    deleted: null,
    labels: {},
    architecture: i.architecture,
  };
}

export function serverJson(s: FakeServer, specs: { type: ServerTypeSpec; image: ImageSpec; location: LocationSpec }): Json {
  const n = s.id;
  return {
    id: s.id,
    name: s.name,
    status: s.status,
    created: hcloudTime(s.created),
    public_net: {
      ipv4: s.publicIpv4 === null ? null : { id: n + 1_000_000_000, ip: s.publicIpv4, blocked: false, dns_ptr: `static.${s.publicIpv4.split('.').reverse().join('.')}.clients.your-server.de` },
      ipv6: s.publicIpv6 === null ? null : { id: n + 2_000_000_000, ip: s.publicIpv6, blocked: false, dns_ptr: [] },
      floating_ips: [],
      firewalls: s.firewalls.map((id) => ({ id, status: 'applied' })),
    },
    private_net: s.privateNet.map((p) => ({ network: p.network, ip: p.ip, alias_ips: [], mac_address: p.macAddress })),
    server_type: serverTypeJson(specs.type),
    datacenter: {
      id: specs.location.datacenter.id,
      name: specs.location.datacenter.name,
      description: specs.location.datacenter.description,
      location: locationJson(specs.location),
    },
    image: imageJson(specs.image),
    iso: null,
    rescue_enabled: false,
    locked: false,
    backup_window: null,
    outgoing_traffic: 0,
    ingoing_traffic: 0,
    included_traffic: 21_990_232_555_520,
    protection: { delete: false, rebuild: false },
    labels: { ...s.labels },
    volumes: [],
    load_balancers: [],
    primary_disk_size: specs.type.disk,
    placement_group: null,
  };
}
