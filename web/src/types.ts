/** The JSON shapes of Drover's admin API, as the dashboard reads them (README "Admin API"). */

import type { AuditView, DeliveryView, FleetView, GroupView, InstanceView, NotificationEndpointView, PlanView, SizingView } from '../../src/server/views.js';

/** The server's own view types (src/server/views.ts): one definition for both ends. */
export type Group = GroupView;
export type Fleet = FleetView;
export type Instance = InstanceView;
export type Block = GroupView['blocked'][number];
/** What sets a group's size and why. */
export type Sizing = SizingView;

export type Plan = PlanView;
export type PlanAction = PlanView['actions'][number];
export type AuditEntry = AuditView;
/** A webhook endpoint (GET /v1/notifications) and one delivery of an event to one (GET /v1/notifications/deliveries). */
export type WebhookEndpoint = NotificationEndpointView;
export type Delivery = DeliveryView;

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
