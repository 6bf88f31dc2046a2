/**
 * What an agent needs to run, read from a JSON file (the local provider writes it into the
 * instance's folder; a cloud provider's user data writes it at boot: src/providers/cloud-init/).
 *
 * The credential comes one of two ways: `credential` in the file (the local provider, whose file
 * only the instance's user can read), or `credentialFile` — the credential the agent saved there,
 * or, on its first start, obtained by exchanging its one-time `bootstrapToken` (a cloud whose user
 * data others can read; bootstrap.ts). Instance metadata (termination notices, rebalance
 * recommendations, the cloud's id of the machine) comes from `metadata`: `file` (the local
 * provider's `noticeFile`), `ec2` (IMDSv2 at `imds.endpoint`) or `hetzner` (Hetzner Cloud's
 * server metadata at `hetznerMetadata.endpoint`: the server id, and no notices).
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
  /** The agent's credential (an HMAC of the instance id). Give this or `credentialFile`. */
  credential: z.string().min(1).max(512).optional(),
  /**
   * Where the agent keeps its credential (mode 0600): read at start when it exists; otherwise
   * obtained with `bootstrapToken` and written there, and used from then on (after restarts too).
   */
  credentialFile: z.string().min(1).optional(),
  /**
   * A one-time token (userData DROVER_BOOTSTRAP_TOKEN) the agent exchanges for its credential at
   * its first start (POST /v1/agent/bootstrap with the machine's id from `metadata`). Needs
   * `credentialFile`, and a `metadata` that knows the machine's id (`ec2` or `hetzner`).
   */
  bootstrapToken: z.string().regex(/^[A-Za-z0-9_-]{16,256}$/, { error: 'must be a bootstrap token (16-256 base64url characters)' }).optional(),
  /**
   * Where the agent learns about its machine: `file` (absent means this: termination notices from
   * `noticeFile`, as the local provider writes them), `ec2` (IMDSv2: spot interruption notices,
   * rebalance recommendations and the machine's instance id) or `hetzner` (Hetzner Cloud's server
   * metadata: the machine's server id; Hetzner has no termination notices, so no notice watcher).
   */
  metadata: z.enum(['file', 'ec2', 'hetzner'], { error: 'must be "file", "ec2" or "hetzner"' }).optional(),
  /**
   * IMDSv2 (`metadata: ec2`): its base URL (may carry a path prefix). Default: the environment's
   * AWS_EC2_METADATA_SERVICE_ENDPOINT, else http://169.254.169.254.
   */
  imds: z.strictObject({ endpoint: z.url({ error: 'must be an http:// URL such as "http://169.254.169.254"' }).optional() }).optional(),
  /**
   * Hetzner Cloud's server metadata (`metadata: hetzner`): its base URL (may carry a path prefix).
   * Default: the environment's DROVER_HETZNER_METADATA_ENDPOINT, else http://169.254.169.254.
   */
  hetznerMetadata: z.strictObject({ endpoint: z.url({ error: 'must be an http:// URL such as "http://169.254.169.254"' }).optional() }).optional(),
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
  if ((c.credential === undefined) === (c.credentialFile === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['credential'], message: 'give exactly one of credential and credentialFile (with bootstrapToken for the first start)' });
  }
  if (c.bootstrapToken !== undefined && c.credentialFile === undefined) ctx.addIssue({ code: 'custom', path: ['bootstrapToken'], message: 'needs credentialFile: where the credential it is exchanged for is kept' });
  if (c.bootstrapToken !== undefined && c.metadata !== 'ec2' && c.metadata !== 'hetzner') {
    ctx.addIssue({ code: 'custom', path: ['bootstrapToken'], message: 'needs metadata "ec2" or "hetzner": the exchange proves the machine by the id its metadata gives' });
  }
  if (c.imds !== undefined && c.metadata !== 'ec2') ctx.addIssue({ code: 'custom', path: ['imds'], message: 'is read only with metadata "ec2"' });
  if (c.hetznerMetadata !== undefined && c.metadata !== 'hetzner') ctx.addIssue({ code: 'custom', path: ['hetznerMetadata'], message: 'is read only with metadata "hetzner"' });
  if (c.noticeFile !== undefined && c.metadata === 'ec2') ctx.addIssue({ code: 'custom', path: ['noticeFile'], message: 'is read only with metadata "file" (with "ec2", notices come from IMDS)' });
  if (c.noticeFile !== undefined && c.metadata === 'hetzner') ctx.addIssue({ code: 'custom', path: ['noticeFile'], message: 'is read only with metadata "file" (Hetzner Cloud has no termination notices)' });
  for (const [key, url] of [['imds', c.imds?.endpoint], ['hetznerMetadata', c.hetznerMetadata?.endpoint]] as const) {
    // A value that is no URL at all was reported by its field already.
    if (url !== undefined && URL.canParse(url) && !url.startsWith('http://') && !url.startsWith('https://')) ctx.addIssue({ code: 'custom', path: [key, 'endpoint'], message: 'must be an http:// or https:// URL' });
  }
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
