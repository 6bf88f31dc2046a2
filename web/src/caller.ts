/**
 * Who is signed in (GET /v1/whoami) and what that lets them do from the page. The server decides
 * every request; the page only hides what the caller's role would be refused, so that a viewer
 * is not offered buttons that can only fail. Pure: no DOM (unit-tested under Node).
 */
export type Role = 'viewer' | 'operator' | 'admin';

export interface Caller {
  /** The token's name; "anonymous" when the server has no token at all. */
  name: string;
  role: Role;
  /** The tenants the token is limited to; null = every tenant. */
  tenants: string[] | null;
  /** False when the server has no token: anyone who reaches it may do everything. */
  authRequired: boolean;
}

/**
 * Whether the caller may change things in a tenant (scale, drain, protect): an operator or an
 * admin, and, for a token limited to some tenants, only in those. An unknown caller (whoami not
 * answered yet) may not: buttons appear once the role is known rather than flash and vanish.
 */
export function mayActOn(caller: Caller | undefined, tenant: string): boolean {
  if (!caller || !mayActAnywhere(caller)) return false;
  // The server limits a token's tenants whatever its role (an admin's too).
  return caller.tenants === null || caller.tenants.includes(tenant);
}

/** Whether the caller may change anything at all (else the views need no action column). */
export function mayActAnywhere(caller: Caller | undefined): boolean {
  return !!caller && caller.role !== 'viewer';
}

/**
 * Whether the caller may act server-wide (a webhook endpoint's test event, redelivering all its
 * dead letters): an operator whose token is not limited to tenants, since an endpoint serves
 * every tenant.
 */
export function mayActServerWide(caller: Caller | undefined): boolean {
  return !!caller && mayActAnywhere(caller) && caller.tenants === null;
}

/**
 * Whether the caller may redeliver a dead letter of `tenant` (null: an event of no tenant, such
 * as a test event, which only a token of every tenant sees).
 */
export function mayRedeliver(caller: Caller | undefined, tenant: string | null): boolean {
  return tenant === null ? mayActServerWide(caller) : mayActOn(caller, tenant);
}

/** "grafana · viewer", "team-a · operator (a, b)". */
export function callerLabel(caller: Caller): string {
  return `${caller.name} · ${caller.role}${caller.tenants ? ` (${caller.tenants.join(', ')})` : ''}`;
}
