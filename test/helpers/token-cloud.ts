/**
 * A simulated cloud whose user data others could read (`agentBootstrap: 'token'`): it keeps each
 * create's user data for the test to read, and can hold creates (the create's answer has not
 * arrived yet).
 */
import type { ProviderCreateRequest, ProviderInstance } from '../../src/providers/index.js';
import { SimProvider } from '../../src/providers/sim/index.js';

export class TokenCloud extends SimProvider {
  readonly agentBootstrap = 'token' as const;
  readonly userData = new Map<string, Array<Record<string, string>>>();
  /** While set, creates wait for it (the create's answer has not arrived). */
  hold: Promise<void> | undefined;
  private created: Array<() => void> = [];

  override async create(req: ProviderCreateRequest): Promise<ProviderInstance> {
    const list = this.userData.get(req.idempotencyKey) ?? [];
    list.push({ ...req.userData });
    this.userData.set(req.idempotencyKey, list);
    for (const notify of this.created.splice(0)) notify();
    if (this.hold) await this.hold;
    return super.create(req);
  }

  /** Resolves at the next create call. */
  nextCreate(): Promise<void> {
    return new Promise((resolve) => this.created.push(resolve));
  }
}
