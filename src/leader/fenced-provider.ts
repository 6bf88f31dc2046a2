/**
 * The last guard before the cloud: a Provider whose mutations (create, delete, setTags) are
 * refused with NotLeaderError unless this replica leads its shard right now. The executor checks
 * leadership too, right before each call; this wrapper also covers every other caller and logs
 * each mutation with the epoch it was made in. Reads pass through.
 */
import { NotLeaderError } from '../errors/index.js';
import type { AgentBootstrap, Provider, ProviderCreateRequest, ProviderInstance, ProviderStatus, RateLimitState } from '../providers/index.js';
import type { Logger } from '../logging/index.js';

export interface ProviderGuard {
  isLeader(): boolean;
  epoch(): number | null;
}

export class FencedProvider implements Provider {
  readonly kind: string;
  readonly agentBootstrap?: AgentBootstrap;
  readonly setTags?: (providerId: string, tags: Record<string, string>) => Promise<void>;
  readonly watchRateLimit?: (listener: (state: RateLimitState) => void) => void;

  constructor(
    private readonly inner: Provider,
    private readonly guard: ProviderGuard,
    private readonly log?: Logger,
  ) {
    this.kind = inner.kind;
    if (inner.agentBootstrap !== undefined) this.agentBootstrap = inner.agentBootstrap;
    // Reads of the budget are not mutations: passed through unguarded.
    const watch = inner.watchRateLimit?.bind(inner);
    if (watch) this.watchRateLimit = watch;
    const setTags = inner.setTags?.bind(inner);
    if (setTags) {
      this.setTags = async (providerId, tags) => {
        this.check('setTags', providerId);
        await setTags(providerId, tags);
      };
    }
  }

  async create(req: ProviderCreateRequest): Promise<ProviderInstance> {
    this.check('create', req.idempotencyKey);
    return this.inner.create(req);
  }

  async delete(providerId: string): Promise<void> {
    this.check('delete', providerId);
    return this.inner.delete(providerId);
  }

  status(providerId: string): Promise<ProviderStatus> {
    return this.inner.status(providerId);
  }

  list(tags: Record<string, string>): Promise<ProviderInstance[]> {
    return this.inner.list(tags);
  }

  private check(op: 'create' | 'delete' | 'setTags', id: string): void {
    if (!this.guard.isLeader()) {
      this.log?.warn({ op, id }, 'provider mutation refused: not the shard leader');
      throw new NotLeaderError(`provider ${op} ${id}`);
    }
    this.log?.info({ op, id, epoch: this.guard.epoch() }, 'provider mutation');
  }
}
