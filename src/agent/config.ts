/**
 * What an agent needs to run, read from a JSON file (the local provider writes it into the
 * instance's folder; a cloud provider would deliver the same through user data).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, errorMessage } from '../errors/index.js';
import { parseCertificates } from '../util/pem.js';

const command = z.array(z.string().min(1)).min(1);

export const agentConfigSchema = z.strictObject({
  instanceId: z.string().min(1),
  /** Server base URLs (http://host:port); the agent tries them in turn and settles on one that accepts it. */
  servers: z.array(z.url()).min(1),
  credential: z.string().min(1),
  /** The workload: started and supervised by the agent; health is reported only while it runs. */
  command: command.optional(),
  /** Run when a drain starts; exit 0 acknowledges the drain. */
  drainCommand: command.optional(),
  /** Run every health interval; health is reported only when it exits 0. */
  healthCommand: command.optional(),
  /** A file the agent polls for a termination notice (JSON `{ "terminateAt": ISO }`), like instance metadata. */
  noticeFile: z.string().min(1).optional(),
  /**
   * A unix socket on which the agent serves the workload (and the drain and health commands,
   * which find it in DROVER_AGENT_SOCKET): protect, unprotect, extend, status (self-socket.ts).
   */
  selfSocket: z.string().min(1).optional(),
  /** Where the agent writes its pid at start. */
  pidFile: z.string().min(1).optional(),
  /** Health interval until the server's welcome says otherwise. */
  healthCheckIntervalMs: z.number().int().positive().default(60_000),
  /**
   * PEM text of the CA(s) https:// servers are verified against (the server's `server.tls.ca`,
   * given as userData DROVER_SERVER_CA). Without it, the system's CAs.
   */
  serverCa: z
    .string()
    .min(1)
    .superRefine((pem, ctx) => {
      try {
        parseCertificates('serverCa', '(agent config)', pem);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: errorMessage(err) });
      }
    })
    .optional(),
  /**
   * Client certificate and key files (PEM) presented to servers that require one (mutual TLS:
   * `server.tls.clientCa`). Read at each connection, so rotated files are used from the next one on.
   */
  clientCert: z.string().min(1).optional(),
  clientKey: z.string().min(1).optional(),
}).superRefine((c, ctx) => {
  if ((c.clientCert === undefined) !== (c.clientKey === undefined)) ctx.addIssue({ code: 'custom', path: [c.clientCert === undefined ? 'clientCert' : 'clientKey'], message: 'clientCert and clientKey go together' });
});

export type AgentConfig = z.output<typeof agentConfigSchema>;

/** Reads and validates the agent's config file. Throws a ConfigError naming every problem. */
export function readAgentConfig(path: string): AgentConfig {
  const source = `agent config ${path}`;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError([{ path: '', message: `reading ${path}: ${errorMessage(err)}` }], source, err);
  }
  const parsed = agentConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
      source,
    );
  }
  return parsed.data;
}
