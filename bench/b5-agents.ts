/**
 * B5 agents: 2,000 real agent connections to a real Drover server. NOT RUN YET: it needs the
 * server (src/server, src/agent), which is being built. Until then the bench reports B5 as
 * pending with every figure null — never an invented number.
 *
 * Hook: when the server exists, implement `runB5` below (start a server on a temp data dir with
 * the sim provider, open B5_AGENTS agent connections, measure) and set `B5_READY = true`;
 * bench/main.ts then runs it in its own process like the other scenarios. The JSON fields are
 * fixed by the issue: { agents, p99Ms, cpuShare, detectKillMs } (see bench/README.md).
 */
export const B5_AGENTS = 2_000;

/** Flip to true once runB5 measures a real server. */
export const B5_READY = false;

export interface B5Result {
  /** Agent connections held open at once. */
  agents: number | null;
  /** p99 of a health report's round trip (agent send → recorded), ms. */
  p99Ms: number | null;
  /** Share of one core the server used while the agents reported (0..cores). */
  cpuShare: number | null;
  /** An instance killed (agent gone) → Drover's replacement decision, ms. */
  detectKillMs: number | null;
  status: 'pending' | 'measured';
  note?: string;
}

export const B5_PENDING: B5Result = {
  agents: null,
  p99Ms: null,
  cpuShare: null,
  detectKillMs: null,
  status: 'pending',
  note: `runs once the server exists: ${B5_AGENTS} real agent connections (src/server, src/agent)`,
};

export async function runB5(): Promise<B5Result> {
  if (!B5_READY) return B5_PENDING;
  throw new Error('B5: not implemented yet (see bench/b5-agents.ts)');
}
