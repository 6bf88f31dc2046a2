/** The JSON shapes of Drover's admin API, as the dashboard reads them (README "Admin API"). */

import type { GroupView, InstanceView } from '../../src/server/views.js';

/** The server's own view types (src/server/views.ts): one definition for both ends. */
export type Group = GroupView;
export type Instance = InstanceView;
export type Block = GroupView['blocked'][number];

export type PlanAction =
  | { kind: 'create'; reason: string; replaces: string | null; message: string }
  | { kind: 'dispatchCreate'; instanceId: string; message: string }
  | { kind: 'cancelCreate'; instanceId: string; reason: string; message: string }
  | { kind: 'drain'; instanceId: string; reason: string; deadline: string; message: string }
  | { kind: 'delete'; instanceId: string; reason: string; message: string }
  | { kind: 'dispatchDelete'; instanceId: string; message: string }
  | { kind: 'forget'; instanceId: string; reason: string; message: string }
  | { kind: 'check'; instanceId: string; cause: string; message: string };

export interface Plan {
  tenant: string;
  group: string;
  configured: boolean;
  summary: { size: number; live: number; inService: number; pending: number; draining: number; unhealthy: number };
  wakeAt: string | null;
  actions: PlanAction[];
  blocked: Block[];
}

export interface AuditEntry {
  seq: number;
  at: string;
  tenant: string;
  group: string;
  instanceId: string | null;
  action: string;
  reason: string;
  event: string | null;
  actor: string | null;
  detail: string | null;
  epoch: number | null;
}

export interface Healthz {
  ok: boolean;
  leader: boolean;
  version: string;
  configError: string | null;
}

/** An error reported by the reconciler (notifyError), as the `error` event carries it. */
export interface ServerError {
  group: string;
  instanceId: string | null;
  message: string;
  at: string;
}
