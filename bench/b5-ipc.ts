/**
 * B5's processes talk over Node's IPC channel (fork): the coordinator (bench/b5-agents.ts) sends
 * commands, the server entry (b5-server.ts) and the agent hosts (b5-agent-host.ts) answer each
 * with a reply carrying the same `seq`.
 */

/** Coordinator → server entry. */
export type ServerCommand =
  | { cmd: 'status' }
  | { cmd: 'measureStart' }
  | { cmd: 'measureStop' }
  /** SIGKILL (the kernel closes the sockets) or SIGSTOP (silent: only the hub's pings can tell) an agent host. */
  | { cmd: 'kill'; pid: number; signal: 'SIGKILL' | 'SIGSTOP'; instanceIds: string[]; timeoutMs: number }
  | { cmd: 'stop' };

/** Server entry → coordinator, once, when the group is created and the API listens. */
export interface ServerReady {
  type: 'ready';
  url: string;
  instanceIds: string[];
}

export interface ServerStatus {
  /** Distinct instances that reported since the server started. */
  reporters: number;
  reports: number;
}

export interface ServerWindow {
  wallMs: number;
  /** process.cpuUsage() over the window, microseconds. */
  userUs: number;
  systemUs: number;
  /** Report latencies (agent's `at` → recorded), ms, in the order received. */
  latenciesMs: number[];
  /** Distinct instances that reported in the window. */
  reporters: number;
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  rssMb: number;
  /** The server process's peak RSS so far (getrusage maxRSS: the OS's own peak, setup included), MB. */
  peakRssMb: number;
  /** Group reconciles (plans) in the window, and their summed wall time, ms (the server's /metrics). */
  reconciles: number | null;
  reconcileMs: number | null;
  /** Time the server's main thread spent runnable but waiting for a core (/proc/self/schedstat), ms; null off Linux. */
  runDelayMs: number | null;
  /** Garbage collections in the window (PerformanceObserver 'gc'): their summed and longest pause, ms, and how many were major (mark-compact). */
  gcMs: number;
  gcMaxMs: number;
  gcMajor: number;
  /** The hub's health commits (`recordHealthBatch`) in the window: count, summed and longest duration (ms), those over 20 ms. */
  commits: { count: number; ms: number; maxMs: number; slow: number };
  /** One `GET /metrics` of the server right after the window (the bench's own, over HTTP), ms. */
  metricsScrapeMs: number;
}

export interface ServerKill {
  /** Kill → each watched instance's disconnect seen by the hub (CheckInstance enqueued), ms, sorted. */
  disconnectMs: number[];
  /** Kill → each watched instance's status call answered by the provider, ms, sorted. */
  statusMs: number[];
}

/** Coordinator → agent host. */
export type HostCommand =
  | { cmd: 'start'; url: string; agents: Array<{ instanceId: string; credential: string }>; spreadMs: number; intervalMs: number }
  | { cmd: 'stats' };

export interface HostStats {
  userUs: number;
  systemUs: number;
  /** Warnings and errors the agents logged (connection lost, refused, ...). */
  warnings: number;
  lastWarning: string | null;
  /** The host's longest event-loop delay since the previous `stats`, ms. */
  loopDelayMaxMs: number;
  /** Agents started so far. */
  agents: number;
}

export interface Request<C> {
  seq: number;
  body: C;
}

export type Reply = { seq: number; ok: true; value: unknown } | { seq: number; ok: false; error: string };

/** Answers the coordinator's requests on this process's IPC channel. */
export function serve<C>(handle: (body: C) => Promise<unknown>): void {
  process.on('message', (raw: Request<C>) => {
    const reply = (r: Reply): void => {
      process.send?.(r);
    };
    handle(raw.body).then(
      (value) => reply({ seq: raw.seq, ok: true, value: value ?? null }),
      (err: unknown) => reply({ seq: raw.seq, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
    );
  });
}
