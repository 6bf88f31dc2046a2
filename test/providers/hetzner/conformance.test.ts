/**
 * The Hetzner provider against the shared Provider contract (test/providers/conformance/suite.ts)
 * through its fetch client and the fake Hetzner Cloud API (test/fakes/hetzner): servers that
 * initialise for a while on a manual clock that `settle` advances; faults injected as Hetzner
 * answers them (429 rate_limit_exceeded, 503 unavailable, 403 forbidden).
 */
import { ManualClock } from '../../../src/clock/index.js';
import { HcloudClient, HetznerProvider } from '../../../src/providers/hetzner/index.js';
import { DEFAULT_TOKEN, FakeHcloud } from '../../fakes/hetzner/index.js';
import { describeProviderConformance, type InjectedFault, type ProviderOperation } from '../conformance/suite.js';

/** The Hetzner route behind each provider operation's first call. */
const ROUTES: Record<ProviderOperation, { method: string; route: string }> = {
  create: { method: 'POST', route: 'create_server' },
  delete: { method: 'DELETE', route: 'delete_server' },
  status: { method: 'GET', route: 'get_server' },
  list: { method: 'GET', route: 'list_servers' },
  setTags: { method: 'GET', route: 'get_server' },
};

describeProviderConformance('hetzner (fake Hetzner Cloud API)', async () => {
  const clock = new ManualClock(new Date(Date.UTC(2030, 0, 1)));
  const fake = new FakeHcloud({ now: () => clock.nowMs(), actionMs: 2_000, deleteMs: 1_000 });
  const endpoint = await fake.start();
  const provider = new HetznerProvider({ client: new HcloudClient({ endpoint, token: DEFAULT_TOKEN, timeoutMs: 10_000 }), clock });
  const inject = (op: ProviderOperation, status: number, code: string, message: string): void => {
    const { method, route } = ROUTES[op];
    fake.failNext(method, route, { status, code, message });
  };
  const faults: Record<InjectedFault, (op: ProviderOperation) => void> = {
    throttled: (op) => inject(op, 429, 'rate_limit_exceeded', 'limit of 3600 requests per hour reached'),
    transient: (op) => inject(op, 503, 'unavailable', 'service unavailable'),
    permanent: (op) => inject(op, 403, 'forbidden', 'insufficient permissions'),
  };
  return {
    provider,
    template: { image: 'ubuntu-24.04', serverTypes: ['cx22'], locations: ['fsn1', 'nbg1'] },
    invalidTemplate: { image: 'ubuntu-24.04' },
    settle: () => clock.advance(1_000),
    close: async () => fake.close(),
    // Plain values up to 63 characters; values that must be encoded (timestamps) up to 36 bytes (labels.ts).
    limits: { maxTagValueLength: 63 },
    unknownProviderId: '999999999',
    faults,
  };
});
