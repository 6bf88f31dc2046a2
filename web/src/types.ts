/** The JSON shapes of Drover's admin API, as the dashboard reads them (README "Admin API"). */

export interface Block {
  code: string;
  message: string;
  instanceId: string | null;
  since: string | null;
  until: string | null;
}

export interface Group {
  tenant: string;
  group: string;
  configured: boolean;
  size: number;
  configuredSize: number | null;
  sizeOverride: number | null;
  inService: number;
  pending: number;
  draining: number;
  unhealthy: number;
  live: number;
  maxLive: number;
  template: string | null;
  templateHash: string | null;
  blocked: Block[];
}

export interface Instance {
  id: string;
  tenant: string;
  group: string;
  status: string;
  providerId: string | null;
  createdAt: string;
  healthAt: string | null;
  drainStartedAt: string | null;
  drainDeadline: string | null;
  drainReason: string | null;
  drainAckedAt: string | null;
  unhealthyAt: string | null;
  noticeDeadline: string | null;
  providerStatus: string | null;
  templateHash: string;
  createReason: string;
  replaces: string | null;
  deletedAt: string | null;
  deleteReason: string | null;
  lastError: string | null;
  connected: boolean;
  /** Protected from voluntary disruption until then (servers with instance protection). */
  protectedUntil?: string | null;
}

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
