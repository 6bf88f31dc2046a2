/**
 * What the fake project can order: server types, system images, locations and their
 * datacenters. The defaults mirror names Hetzner uses (as of 2025) so a provider's config can
 * be written as for the real cloud; a test may pass its own lists (FakeHcloudOptions).
 * Prices, deprecation and the datacenter's per-type availability lists are not modelled.
 */

export type Architecture = 'x86' | 'arm';

export interface ServerTypeSpec {
  id: number;
  name: string;
  cores: number;
  /** GB. */
  memory: number;
  /** GB. */
  disk: number;
  cpuType: 'shared' | 'dedicated';
  architecture: Architecture;
  /** Where the type may be ordered; any location when absent. Others answer invalid_input "unsupported location for server type". */
  locations?: readonly string[];
}

export interface ImageSpec {
  id: number;
  name: string;
  description: string;
  osFlavor: string;
  osVersion: string;
  architecture: Architecture;
}

export interface LocationSpec {
  id: number;
  name: string;
  description: string;
  country: string;
  city: string;
  latitude: number;
  longitude: number;
  /** What the metadata service calls the region, e.g. 'eu-central'. */
  networkZone: string;
  /** The datacenter servers are placed in, e.g. 'fsn1-dc14' (the metadata service's availability-zone). */
  datacenter: { id: number; name: string; description: string };
}

const EU = ['fsn1', 'nbg1', 'hel1'] as const;

export const DEFAULT_SERVER_TYPES: readonly ServerTypeSpec[] = [
  { id: 22, name: 'cpx11', cores: 2, memory: 2, disk: 40, cpuType: 'shared', architecture: 'x86' },
  { id: 23, name: 'cpx21', cores: 3, memory: 4, disk: 80, cpuType: 'shared', architecture: 'x86' },
  { id: 24, name: 'cpx31', cores: 4, memory: 8, disk: 160, cpuType: 'shared', architecture: 'x86' },
  { id: 104, name: 'cx22', cores: 2, memory: 4, disk: 40, cpuType: 'shared', architecture: 'x86', locations: EU },
  { id: 105, name: 'cx32', cores: 4, memory: 8, disk: 80, cpuType: 'shared', architecture: 'x86', locations: EU },
  { id: 106, name: 'cx42', cores: 8, memory: 16, disk: 160, cpuType: 'shared', architecture: 'x86', locations: EU },
  { id: 45, name: 'cax11', cores: 2, memory: 4, disk: 40, cpuType: 'shared', architecture: 'arm', locations: EU },
  { id: 93, name: 'cax21', cores: 4, memory: 8, disk: 80, cpuType: 'shared', architecture: 'arm', locations: EU },
  { id: 96, name: 'ccx13', cores: 2, memory: 8, disk: 80, cpuType: 'dedicated', architecture: 'x86' },
  { id: 97, name: 'ccx23', cores: 4, memory: 16, disk: 160, cpuType: 'dedicated', architecture: 'x86' },
];

export const DEFAULT_IMAGES: readonly ImageSpec[] = [
  { id: 161547269, name: 'ubuntu-24.04', description: 'Ubuntu 24.04', osFlavor: 'ubuntu', osVersion: '24.04', architecture: 'x86' },
  { id: 161547270, name: 'ubuntu-24.04', description: 'Ubuntu 24.04', osFlavor: 'ubuntu', osVersion: '24.04', architecture: 'arm' },
  { id: 67794396, name: 'ubuntu-22.04', description: 'Ubuntu 22.04', osFlavor: 'ubuntu', osVersion: '22.04', architecture: 'x86' },
  { id: 103908070, name: 'ubuntu-22.04', description: 'Ubuntu 22.04', osFlavor: 'ubuntu', osVersion: '22.04', architecture: 'arm' },
  { id: 114690387, name: 'debian-12', description: 'Debian 12', osFlavor: 'debian', osVersion: '12', architecture: 'x86' },
  { id: 114690389, name: 'debian-12', description: 'Debian 12', osFlavor: 'debian', osVersion: '12', architecture: 'arm' },
];

export const DEFAULT_LOCATIONS: readonly LocationSpec[] = [
  {
    id: 1,
    name: 'fsn1',
    description: 'Falkenstein DC Park 1',
    country: 'DE',
    city: 'Falkenstein',
    latitude: 50.47612,
    longitude: 12.370071,
    networkZone: 'eu-central',
    datacenter: { id: 4, name: 'fsn1-dc14', description: 'Falkenstein 1 virtual DC 14' },
  },
  {
    id: 2,
    name: 'nbg1',
    description: 'Nuremberg DC Park 1',
    country: 'DE',
    city: 'Nuremberg',
    latitude: 49.452102,
    longitude: 11.076665,
    networkZone: 'eu-central',
    datacenter: { id: 2, name: 'nbg1-dc3', description: 'Nuremberg 1 virtual DC 3' },
  },
  {
    id: 3,
    name: 'hel1',
    description: 'Helsinki DC Park 1',
    country: 'FI',
    city: 'Helsinki',
    latitude: 60.169855,
    longitude: 24.938379,
    networkZone: 'eu-central',
    datacenter: { id: 3, name: 'hel1-dc2', description: 'Helsinki 1 virtual DC 2' },
  },
  {
    id: 4,
    name: 'ash',
    description: 'Ashburn, VA',
    country: 'US',
    city: 'Ashburn, VA',
    latitude: 39.045821,
    longitude: -77.487073,
    networkZone: 'us-east',
    datacenter: { id: 5, name: 'ash-dc1', description: 'Ashburn virtual DC 1' },
  },
  {
    id: 5,
    name: 'hil',
    description: 'Hillsboro, OR',
    country: 'US',
    city: 'Hillsboro, OR',
    latitude: 45.54222,
    longitude: -122.951924,
    networkZone: 'us-west',
    datacenter: { id: 6, name: 'hil-dc1', description: 'Hillsboro virtual DC 1' },
  },
];

/** Looks things up by ID (number or numeric string) or name, as `server_type`, `image` and `location` accept either. */
export class Catalog {
  constructor(
    readonly serverTypes: readonly ServerTypeSpec[] = DEFAULT_SERVER_TYPES,
    readonly images: readonly ImageSpec[] = DEFAULT_IMAGES,
    readonly locations: readonly LocationSpec[] = DEFAULT_LOCATIONS,
  ) {
    if (locations.length === 0) throw new RangeError('the catalog needs at least one location');
  }

  serverType(ref: string | number): ServerTypeSpec | undefined {
    return this.serverTypes.find((t) => matchesRef(t, ref));
  }

  location(ref: string | number): LocationSpec | undefined {
    return this.locations.find((l) => matchesRef(l, ref));
  }

  locationOfDatacenter(ref: string | number): LocationSpec | undefined {
    return this.locations.find((l) => matchesRef(l.datacenter, ref));
  }

  /** By ID: that image, whatever its architecture. By name: the one built for `architecture`, else any of that name. */
  image(ref: string | number, architecture: Architecture): ImageSpec | undefined {
    if (isId(ref)) return this.images.find((i) => i.id === Number(ref));
    const named = this.images.filter((i) => i.name === ref);
    return named.find((i) => i.architecture === architecture) ?? named[0];
  }
}

function isId(ref: string | number): boolean {
  return typeof ref === 'number' || /^[1-9][0-9]*$/.test(ref);
}

function matchesRef(item: { id: number; name: string }, ref: string | number): boolean {
  return isId(ref) ? item.id === Number(ref) : item.name === ref;
}
