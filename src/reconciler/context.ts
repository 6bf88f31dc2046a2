/**
 * The shared parts the reconciler's pieces (event handling, executor, provider sync) work with.
 * Built once by the Reconciler; not part of the public API.
 */
import type { Clock } from '../clock/index.js';
import type { ConfigLoader, GroupSettings } from '../config/index.js';
import type { InstanceManager } from '../instances/index.js';
import type { Provider } from '../providers/index.js';
import type { CallGate } from '../queue/call-gate.js';
import type { Priority } from '../queue/priority.js';
import type { OperatorState } from '../state/index.js';
import type { ReconcilerStore } from './ports.js';
import type { Logger } from '../logging/index.js';
import type { DurableTimers } from './timers.js';

export interface ReconcilerObserver {
  /** A group was reconciled (or skipped because this server is not the leader). */
  reconciled?(outcome: 'ok' | 'error' | 'skipped', durationMs: number): void;
  /** A provider call finished. */
  providerCall?(op: 'create' | 'delete' | 'status' | 'list' | 'setTags', durationMs: number, error: unknown): void;
  /** A drain began. */
  drainStarted?(reason: string): void;
  /** An instance was deleted at the provider, for `reason`. */
  instanceDeleted?(reason: string): void;
  /** A failed handler was scheduled for another attempt. */
  retried?(): void;
}

export interface Context {
  clock: Clock;
  log: Logger;
  store: ReconcilerStore;
  provider: Provider;
  instanceManager: InstanceManager;
  configLoader: ConfigLoader;
  gate: CallGate;
  timers: DurableTimers;
  observer: ReconcilerObserver;
  random: () => number;
  /** Instance ids with a create or delete call in flight in this process. */
  inFlight: Map<string, 'create' | 'delete'>;
  /** True while this server may act; checked before every mutation. */
  leader(): boolean;
  /** The leadership epoch to record in the audit, when known. */
  epoch(): number | null;
  /** True once this reconciler was abandoned (crash simulation): late callbacks do nothing. */
  halted(): boolean;
  /** Schedules a reconcile of the group. */
  markDirty(tenant: string, group: string, cause: string, priority: Priority): void;
  notifyDrain(instanceId: string, group: string, reason: string, unhealthyAt: Date, deleteAt: Date): void;
  notifyError(group: string, instanceId: string, message: string): void;
  /** Effective settings of a group (config plus operator size), null when not configured. */
  settings(tenant: string, group: string): GroupSettings | null;
  newInstanceId(): string;
  /** Operator decisions (API sizes, protection, holds, drain requests). */
  operatorState(): OperatorState;
  callTimeoutMs(): number;
  maxAttempts(): number;
}
