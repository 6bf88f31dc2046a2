/**
 * The server's event stream (`GET /v1/events`): audit entries (every lifecycle change), drain
 * notices, errors, config reloads, leadership changes, first health reports (an instance
 * going from pending to in service) and rebalance recommendations (an instance's cloud would
 * like it moved: `{ instanceId, tenant, group, noticeTime, at }`), fanned out to subscribers.
 */
export type BusEventType = 'audit' | 'drain' | 'error' | 'config' | 'leader' | 'health' | 'rebalance';

export interface BusEvent {
  type: BusEventType;
  /** Resume point for audit events (the audit sequence number). */
  id?: string;
  data: unknown;
}

export class EventBus {
  private readonly subscribers = new Set<(event: BusEvent) => void>();

  publish(event: BusEvent): void {
    for (const subscriber of this.subscribers) {
      try {
        subscriber(event);
      } catch {
        // One broken subscriber must not starve the others.
      }
    }
  }

  subscribe(subscriber: (event: BusEvent) => void): () => void {
    this.subscribers.add(subscriber);
    return () => this.subscribers.delete(subscriber);
  }

  get size(): number {
    return this.subscribers.size;
  }
}
