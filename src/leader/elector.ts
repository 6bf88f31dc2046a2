/**
 * Leadership. The reconciler acts only while `isLeader()` is true; an elector says so and tells
 * listeners when it changes (a win must be followed by InitialReconcile).
 */
export interface LeaderElector {
  /** Begins campaigning (or, for a single node, becomes leader). */
  start(): Promise<void>;
  /** Gives leadership up and stops. */
  stop(): Promise<void>;
  /** True while this server may act. Cheap; called before every provider mutation. */
  isLeader(): boolean;
  /** The leadership term (the leader key's revision in etcd); null when not leader or unknown. */
  epoch(): number | null;
  /** The advertised address of the current leader, when known (for redirects). */
  leaderAddress(): string | null;
  /** Subscribes to leadership changes. */
  onChange(listener: (leader: boolean) => void): () => void;
}

/** The default: one server, always the leader. */
export class SingleNodeElector implements LeaderElector {
  private leader = false;
  private readonly listeners = new Set<(leader: boolean) => void>();

  constructor(private readonly address: string | null | (() => string | null) = null) {}

  async start(): Promise<void> {
    if (this.leader) return;
    this.leader = true;
    for (const listener of this.listeners) listener(true);
  }

  async stop(): Promise<void> {
    if (!this.leader) return;
    this.leader = false;
    for (const listener of this.listeners) listener(false);
  }

  isLeader(): boolean {
    return this.leader;
  }

  epoch(): number | null {
    return this.leader ? 1 : null;
  }

  leaderAddress(): string | null {
    return typeof this.address === 'function' ? this.address() : this.address;
  }

  onChange(listener: (leader: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
