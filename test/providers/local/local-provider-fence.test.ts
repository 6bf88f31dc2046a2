/**
 * LocalProvider shared by several servers: only the one that may mutate (the shard leader)
 * creates, deletes, tags, or sweeps; a delete whose server stopped leading during the grace
 * period does not escalate to SIGKILL.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { NotLeaderError } from '../../../src/errors/index.js';
import { localInstancePaths, writeNotice, type LocalProvider, type LocalProviderOptions } from '../../../src/providers/local/index.js';
import type { ProviderCreateRequest } from '../../../src/providers/index.js';
import { useLocalProviderFixture } from './fake-agent.js';

const fx = useLocalProviderFixture('drover-local-fence-');
const provider = (options: Partial<LocalProviderOptions> = {}): LocalProvider => fx.provider(options);
let seq = 0;

function request(command?: string[]): ProviderCreateRequest {
  const id = `i-fence${process.pid}-${++seq}`;
  fx.track(id);
  return {
    idempotencyKey: id,
    tags: { 'drover:instance-id': id },
    template: command ? { command } : {},
    userData: { DROVER_SERVER: 'http://127.0.0.1:7001', DROVER_AGENT_CREDENTIAL: 'secret-credential' },
  };
}

async function ready(id: string): Promise<void> {
  const dir = localInstancePaths(fx.stateDir, id).dir;
  await vi.waitFor(() => expect(existsSync(join(dir, 'ready'))).toBe(true), { timeout: 10_000, interval: 10 });
}

describe('LocalProvider with mayMutate', () => {
  it('refuses create, delete and setTags while it may not mutate; reads work', async () => {
    let may = false;
    const follower = provider({ mayMutate: () => may });
    const req = request();
    await expect(follower.create(req)).rejects.toBeInstanceOf(NotLeaderError);
    expect(existsSync(localInstancePaths(fx.stateDir, req.idempotencyKey).dir)).toBe(false);
    may = true;
    const created = await follower.create(req);
    await ready(req.idempotencyKey);
    may = false;
    await expect(follower.setTags(created.providerId, { x: 'y' })).rejects.toBeInstanceOf(NotLeaderError);
    await expect(follower.delete(created.providerId)).rejects.toBeInstanceOf(NotLeaderError);
    expect(await follower.status(created.providerId)).toBe('running');
    expect((await follower.list({})).map((i) => i.providerId)).toEqual([created.providerId]);
  });

  it('only a server that may mutate deletes an instance at its notice time', async () => {
    const leader = provider();
    const req = request();
    await leader.create(req);
    await ready(req.idempotencyKey);
    writeNotice(fx.stateDir, req.idempotencyKey, new Date(Date.now() - 1_000));
    const follower = provider({ mayMutate: () => false });
    await follower.sweep();
    expect((await follower.list({})).length).toBe(1);
    await leader.sweep();
    expect(await leader.list({})).toEqual([]);
  });

  it('does not escalate to SIGKILL when it stopped leading during the grace period', async () => {
    let may = true;
    const p = provider({ mayMutate: () => may, killGracePeriodMs: 500 });
    const req = request(['ignore-sigterm']);
    const created = await p.create(req);
    await ready(req.idempotencyKey);
    const deleting = p.delete(created.providerId);
    // SIGTERM delivered (and ignored): the provider now waits for the exit.
    await vi.waitFor(() => expect(existsSync(join(localInstancePaths(fx.stateDir, req.idempotencyKey).dir, 'sigterm'))).toBe(true), { timeout: 5_000, interval: 10 });
    may = false; // the lease lapsed while waiting for the instance to exit
    await expect(deleting).rejects.toBeInstanceOf(NotLeaderError);
    expect(await p.status(created.providerId)).toBe('running');
  });
});
