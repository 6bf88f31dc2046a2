/**
 * B5's agent host: many real agents (`runAgent`, the same code as `drover agent`, without a
 * workload) in one process, each with its own config, credential and WebSocket. Starts are spread
 * evenly over `spreadMs`, so the reports of a fleet that did not all boot in the same millisecond
 * arrive spread over each interval.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { runAgent, type Agent } from '../src/agent/agent.js';
import type { Logger } from '../src/index.js';
import { serve, type HostCommand, type HostStats } from './b5-ipc.js';

// The coordinator gone (crash, kill) means this process must go too.
process.on('disconnect', () => process.exit(0));

let warnings = 0;
let lastWarning: string | null = null;
const warn = (obj: object, msg?: string): void => {
  warnings++;
  lastWarning = `${msg ?? ''} ${JSON.stringify(obj)}`;
};
const logger: Logger = { debug: () => undefined, info: () => undefined, warn, error: warn };

const agents: Agent[] = [];
// This process's event-loop delay since the last `stats` (a starved host times its agents' handshakes out).
const delay = monitorEventLoopDelay({ resolution: 20 });
delay.enable();

serve<HostCommand>(async (body) => {
  switch (body.cmd) {
    case 'start': {
      const { url, spreadMs, intervalMs } = body;
      body.agents.forEach(({ instanceId, credential }, i) => {
        setTimeout(
          () => agents.push(runAgent({ instanceId, servers: [url], credential, healthCheckIntervalMs: intervalMs }, { logger, keepAlive: false })),
          (i * spreadMs) / body.agents.length,
        );
      });
      return null;
    }
    case 'stats': {
      const cpu = process.cpuUsage();
      const loopDelayMaxMs = delay.max / 1e6;
      delay.reset();
      return { userUs: cpu.user, systemUs: cpu.system, warnings, lastWarning, loopDelayMaxMs, agents: agents.length } satisfies HostStats;
    }
  }
});
