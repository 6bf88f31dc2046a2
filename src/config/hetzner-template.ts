/**
 * The launch settings of a template when `provider.kind` is `hetzner`, checked at config load as
 * the aws ones are (a bad field is refused with its path; the previous config stays in force).
 */
import { z } from 'zod';
import { agentTemplateFields } from './aws-template.js';

/** Hetzner takes at most 32 KiB of user data. */
export const HETZNER_USER_DATA_MAX_BYTES = 32 * 1024;

const name = (what: string) => z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/i, { error: `must be a ${what} name such as "fsn1"` });

export const hetznerTemplateSchema = z.strictObject({
  /** An image name ("ubuntu-24.04") or id. */
  image: z.union([z.string().min(1).max(128), z.number().int().positive()]),
  /** Tried in order when one is unavailable. */
  serverTypes: z.array(name('server type')).min(1, { error: 'must list at least one server type' }).max(20),
  /** Instances are spread over these (kept balanced, like an auto-scaling group over zones); each is a fallback for the others. */
  locations: z.array(name('location')).min(1, { error: 'must list at least one location' }).max(10).optional(),
  /** SSH key names or ids. */
  sshKeys: z.array(z.union([z.string().min(1).max(128), z.number().int().positive()])).max(50).optional(),
  /** Private networks, by name or id (names are looked up once per server start). */
  networks: z.array(z.union([z.number().int().positive(), name('network')])).max(10).optional(),
  /** Firewalls, by name or id. */
  firewalls: z.array(z.union([z.number().int().positive(), name('firewall')])).max(10).optional(),
  /** More labels (not `drover/...`). */
  labels: z.record(z.string(), z.string()).optional(),
  /** Extra cloud-init, run after Drover's bootstrap. */
  userData: z.string().max(HETZNER_USER_DATA_MAX_BYTES).optional(),
  ...agentTemplateFields,
});

export type HetznerTemplate = z.output<typeof hetznerTemplateSchema>;
