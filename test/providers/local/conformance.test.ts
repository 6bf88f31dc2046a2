/**
 * LocalProvider against the shared Provider contract (test/providers/conformance/suite.ts), with
 * real processes: each instance is the fake agent (fake-agent.ts), a Node script that starts in
 * a few tens of milliseconds. The provider answers from /proc and its state folder, so its reads
 * are consistent at once; `settle` is one poll interval for the suite's bounded polling.
 * It cannot inject backend failures: the error-classification cases are skipped, except the
 * template it refuses before creating anything.
 */
import { SystemClock } from '../../../src/clock/index.js';
import { describeProviderConformance } from '../conformance/suite.js';
import { useLocalProviderFixture } from './fake-agent.js';

const POLL_MS = 20;
const clock = new SystemClock();
const fx = useLocalProviderFixture('drover-local-conf-');

describeProviderConformance('local', async () => {
  const provider = fx.provider({ killGracePeriodMs: 2_000 });
  return {
    provider,
    template: { command: ['sleep', '1000'] },
    userData: { DROVER_SERVER: 'http://127.0.0.1:7001', DROVER_AGENT_CREDENTIAL: 'conformance-credential' },
    settle: () => clock.sleep(POLL_MS),
    maxSettles: 250, // 5 s
    // The fixture closes the provider, kills what carries a tracked id and removes the folder.
    close: async () => undefined,
    invalidTemplate: { command: 'not-an-array' },
    willCreate: (id) => fx.track(id),
  };
});
