/**
 * Pure helpers: durations, ages, countdowns and the words the dashboard uses for an instance's
 * state. No DOM (unit-tested under Node).
 */
export interface InstanceLike {
  status: string;
  healthAt: string | null;
  unhealthyAt: string | null;
  providerStatus: string | null;
  drainDeadline: string | null;
  drainStartedAt: string | null;
  connected: boolean;
  templateHash: string;
  protectedUntil?: string | null;
  /** The launch hook (`pending`: not in service until completed); absent from an older server. */
  launchHook?: string | null;
}

/** "45s", "3m 20s", "2h 5m", "4d 3h": the two largest units. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m}m ${s % 60}s` : `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h}h ${m % 60}m` : `${h}h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d}d ${h % 24}h` : `${d}d`;
}

/** "3m ago" for a past time; "—" for none. */
export function ago(iso: string | null, now: number): string {
  if (!iso) return '—';
  return `${duration(now - Date.parse(iso))} ago`;
}

export function age(iso: string, now: number): string {
  return duration(now - Date.parse(iso));
}

/** A drain deadline as a countdown: "in 4m 10s" or "overdue 12s". */
export function countdown(deadlineIso: string, now: number): { text: string; overdue: boolean; remainingMs: number } {
  const remainingMs = Date.parse(deadlineIso) - now;
  return remainingMs >= 0 ? { text: `in ${duration(remainingMs)}`, overdue: false, remainingMs } : { text: `overdue ${duration(-remainingMs)}`, overdue: true, remainingMs };
}

/** A drain needs a person when its deadline is past, under a minute away, or in its last fifth. */
export function drainUrgent(i: Pick<InstanceLike, 'status' | 'drainDeadline' | 'drainStartedAt'>, now: number): boolean {
  if (i.status !== 'draining' || !i.drainDeadline) return false;
  const deadline = Date.parse(i.drainDeadline);
  const remaining = deadline - now;
  if (remaining < 60_000) return true;
  if (!i.drainStartedAt) return false;
  const total = deadline - Date.parse(i.drainStartedAt);
  return total > 0 && remaining / total < 0.2;
}

const PROVIDER_LIVE = new Set(['running', 'pending']);

/** Whether an instance looks unhealthy: judged so, its provider reports it not running, or its agent went silent. */
export function isUnhealthy(i: InstanceLike): boolean {
  if (i.status === 'deleted') return false;
  if (i.unhealthyAt) return true;
  if (i.providerStatus && !PROVIDER_LIVE.has(i.providerStatus)) return true;
  return i.status === 'running' && i.healthAt !== null && !i.connected;
}

/** One word for an instance's state in a table. */
export function stateLabel(i: InstanceLike): string {
  if (i.status === 'running') {
    if (isUnhealthy(i)) return i.connected ? 'unhealthy' : 'disconnected';
    // A launch hook holds it out of service until it is completed (or replaced, when abandoned).
    if (i.launchHook === 'pending') return 'launch hook';
    if (i.launchHook === 'abandoned') return 'abandoned';
    return i.healthAt ? 'in service' : 'booting';
  }
  return i.status;
}

export function isProtected(i: Pick<InstanceLike, 'protectedUntil'>, now: number): boolean {
  return !!i.protectedUntil && Date.parse(i.protectedUntil) > now;
}

export function drifted(i: Pick<InstanceLike, 'templateHash'>, groupHash: string | null): boolean {
  return groupHash !== null && i.templateHash !== groupHash;
}

export function shortHash(hash: string | null): string {
  return hash ? hash.slice(0, 10) : '—';
}

/** A local date and time, to the second. */
export function when(iso: string | null): string {
  if (!iso) return '—';
  const d = new Date(iso);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/**
 * Block codes that mean a person should look: the group cannot act or its provider fails, or it
 * left the config and its instances are removed at the block's `until` unless the config brings
 * it back (a group cut from the file by mistake is caught only if someone sees this in time).
 */
export const ATTENTION_BLOCKS: ReadonlySet<string> = new Set(['ShortCircuit', 'ProviderErrors', 'BudgetExhausted', 'NotLeader', 'RotationHeld', 'RemovalPending']);

/** What the form's text is sent as: a number when it reads as one, else the text itself, so the server words the error. */
export function sizeValue(text: string): number | string {
  const trimmed = text.trim();
  return /^-?\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : trimmed;
}
