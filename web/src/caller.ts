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

/** "grafana · viewer", "team-a · operator (a, b)". */
export function callerLabel(caller: Caller): string {
  return `${caller.name} · ${caller.role}${caller.tenants ? ` (${caller.tenants.join(', ')})` : ''}`;
}
