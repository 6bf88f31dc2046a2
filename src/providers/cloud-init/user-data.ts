/**
 * The user data a cloud provider (EC2, Hetzner Cloud) hands a new instance so that cloud-init
 * (Ubuntu, Debian, Amazon Linux, Fedora/RHEL-likes) installs and starts its Drover agent: a shell script, or a MIME multipart of that script and
 * the operator's own user data (`extraUserData`, a cloud-config or a script of its own).
 *
 * What the script does, at first boot, as root:
 * 1. Node.js: kept when `node` is 20.19 or later; otherwise Node.js 20 is installed from the
 *    NodeSource repository (apt on Debian/Ubuntu, dnf/yum on Amazon Linux/RHEL). An AMI without
 *    internet access must bring Node.js ≥ 20.19 itself (and `install` must point at a reachable
 *    registry or a local tarball).
 * 2. The agent: `install` (default `npm install -g --allow-scripts=better-sqlite3 drover@<VERSION>`:
 *    this Drover's version; npm ≥ 11.16 runs a global install's dependency install scripts only when
 *    allowed by name, and better-sqlite3 needs its own — older npm ignores the flag and runs them).
 *    `install` is a shell command line, run as written (it is the operator's template).
 * 3. A system user `drover`; the agent config in `/etc/drover/agent.json` (0600, owned by it),
 *    written from a quoted heredoc (no expansion: nothing in it is ever shell syntax); the
 *    credential file goes to the unit's StateDirectory (`/var/lib/drover-agent/credential`), the
 *    self-service socket to its RuntimeDirectory (`/run/drover-agent/agent.sock`); `metadata` is
 *    the input's (`ec2` or `hetzner`: where the agent reads its machine's id), nothing else differs.
 * 4. `drover-agent.service`: runs `drover agent` as `drover`, `Restart=always` (but not after exit
 *    2, 3 or 4: credential refused, instance deleted, bootstrap refused — starting again would
 *    change nothing), hardened (no new privileges, no capabilities, read-only system, private
 *    /tmp and devices, kernel and cgroup settings protected). The workload (`agent.command`) runs
 *    under the same restrictions, as `drover`.
 * 5. `systemctl enable --now drover-agent.service`.
 *
 * Contracts:
 * - The agent config embedded is validated by the agent's own schema (`agentConfigSchema`) when
 *   rendering; a bad value is an InvalidRequestError naming its field. `agentConfigFromUserData`
 *   finds it again (between the `DROVER_AGENT_CONFIG_JSON` heredoc markers, in a script or a
 *   multipart, plain or base64) and validates it the same way.
 * - Size. Each cloud takes so much user data: EC2 16 KiB (before base64), Hetzner Cloud 32 KiB
 *   (`USER_DATA_MAX_BYTES`, chosen by `metadata`; `maxBytes` sets another limit). Anything larger
 *   is refused with an InvalidRequestError that names the limit and the largest of the fields that
 *   made it so.
 * - Multipart. With `extraUserData` (starting `#cloud-config`, `#!`, `#cloud-boothook` or
 *   `#include`), the operator's part comes first (cloud-init runs scripts in the order of their
 *   part names: the operator's script runs before the agent's, e.g. to set a proxy); the boundary
 *   is derived from the content (the same input renders the same bytes) and appears in neither part.
 * - Rendering is pure: no clock, no randomness, no I/O.
 */
import { createHash } from 'node:crypto';
import { agentConfigSchema, type AgentConfig } from '../../agent/config.js';
import { InvalidRequestError, PermanentError } from '../../errors/index.js';
import { USER_DATA, type ProviderCreateRequest } from '../types.js';
import { VERSION } from '../../util/version.js';
import { agentUnit } from './agent-unit.js';

/** Where an agent can read its machine's metadata; also which cloud's user data limit applies. */
export type AgentUserDataMetadata = 'ec2' | 'hetzner';
/** Each cloud's limit on user data, in bytes (EC2's before base64; Hetzner Cloud's "32KiB"). */
export const USER_DATA_MAX_BYTES: Readonly<Record<AgentUserDataMetadata, number>> = { ec2: 16 * 1024, hetzner: 32 * 1024 };
/** EC2's limit on user data, in bytes, before base64 (`USER_DATA_MAX_BYTES.ec2`). */
export const MAX_USER_DATA_BYTES = USER_DATA_MAX_BYTES.ec2;
/** The clouds' names, for errors. */
const CLOUD_NAMES: Readonly<Record<AgentUserDataMetadata, string>> = { ec2: 'EC2', hetzner: 'Hetzner Cloud' };
/** The heredoc delimiter around the embedded agent config (also what `agentConfigFromUserData` looks for). */
export const AGENT_CONFIG_MARKER = 'DROVER_AGENT_CONFIG_JSON';
/** Where the script puts things on the instance. */
export const AGENT_PATHS = {
  config: '/etc/drover/agent.json',
  credentialFile: '/var/lib/drover-agent/credential',
  selfSocket: '/run/drover-agent/agent.sock',
  unit: '/etc/systemd/system/drover-agent.service',
} as const;

/** The default agent install: this Drover's version from npm, better-sqlite3's install script allowed. */
export function defaultInstallCommand(version = VERSION): string {
  return `npm install -g --allow-scripts=better-sqlite3 drover@${version}`;
}

export interface AgentUserDataInput {
  /** The Drover instance id (userData DROVER_INSTANCE_ID). */
  instanceId: string;
  /** Server base URLs (userData DROVER_SERVER, split). */
  servers: readonly string[];
  /** The one-time bootstrap token (userData DROVER_BOOTSTRAP_TOKEN). */
  bootstrapToken: string;
  /** PEM of the CA the servers' certificates chain to (userData DROVER_SERVER_CA). */
  serverCa?: string;
  /** The workload and its commands (the template's). */
  agent?: {
    command?: readonly string[];
    drainCommand?: readonly string[];
    healthCommand?: readonly string[];
    healthCheckIntervalMs?: number;
  };
  /** A shell command line that installs `drover` on the PATH. Default `defaultInstallCommand()`. */
  install?: string;
  /**
   * Where the agent reads its machine's metadata: `ec2` (IMDSv2) or `hetzner` (Hetzner Cloud's
   * server metadata). It names the cloud, so it also chooses the default `maxBytes`.
   */
  metadata: AgentUserDataMetadata;
  /**
   * The most bytes the rendered user data may have. Default: the cloud's
   * (`USER_DATA_MAX_BYTES[metadata]`: 16 KiB on EC2, 32 KiB on Hetzner Cloud).
   */
  maxBytes?: number;
  /** The operator's own user data, run too (a cloud-config or a script). */
  extraUserData?: string;
}

/** The agent config the script writes to /etc/drover/agent.json. Throws InvalidRequestError for a value the agent would refuse. */
export function agentConfigFor(input: AgentUserDataInput): AgentConfig {
  const a = input.agent ?? {};
  const candidate = {
    instanceId: input.instanceId,
    servers: [...input.servers],
    credentialFile: AGENT_PATHS.credentialFile,
    bootstrapToken: input.bootstrapToken,
    metadata: input.metadata,
    selfSocket: AGENT_PATHS.selfSocket,
    ...(a.command ? { command: [...a.command] } : {}),
    ...(a.drainCommand ? { drainCommand: [...a.drainCommand] } : {}),
    ...(a.healthCommand ? { healthCommand: [...a.healthCommand] } : {}),
    ...(a.healthCheckIntervalMs !== undefined ? { healthCheckIntervalMs: a.healthCheckIntervalMs } : {}),
    ...(input.serverCa !== undefined ? { serverCa: input.serverCa } : {}),
  };
  const parsed = agentConfigSchema.safeParse(candidate);
  if (!parsed.success) {
    // Never echo the token: report paths and messages only.
    throw new InvalidRequestError(`rendering the agent user data for instance ${input.instanceId}: ${parsed.error.issues.map((i) => `${fieldName(i.path.map(String))}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

/** The input's name for an agent config path (`agent.command` for `command`). */
function fieldName(path: string[]): string {
  const [head = '', ...rest] = path;
  const own: Record<string, string> = { command: 'agent.command', drainCommand: 'agent.drainCommand', healthCommand: 'agent.healthCommand', healthCheckIntervalMs: 'agent.healthCheckIntervalMs' };
  return [own[head] ?? head, ...rest].join('.');
}

/** The user data that installs and starts the agent (see the module's comment). */
export function renderAgentUserData(input: AgentUserDataInput): string {
  const config = agentConfigFor(input);
  const script = agentScript(config, input.install ?? defaultInstallCommand());
  const text = input.extraUserData === undefined ? script : multipart(script, input.extraUserData);
  const bytes = Buffer.byteLength(text, 'utf8');
  const max = userDataMaxBytes(input);
  if (bytes > max) {
    const contributors: Array<[string, number]> = [
      ['extraUserData', Buffer.byteLength(input.extraUserData ?? '', 'utf8')],
      ['install', Buffer.byteLength(input.install ?? '', 'utf8')],
      ['serverCa', Buffer.byteLength(input.serverCa ?? '', 'utf8')],
      ['agent.command', Buffer.byteLength(JSON.stringify(input.agent?.command ?? []), 'utf8')],
      ['agent.drainCommand', Buffer.byteLength(JSON.stringify(input.agent?.drainCommand ?? []), 'utf8')],
      ['agent.healthCommand', Buffer.byteLength(JSON.stringify(input.agent?.healthCommand ?? []), 'utf8')],
      ['servers', Buffer.byteLength(JSON.stringify(input.servers), 'utf8')],
    ];
    const [field, size] = contributors.reduce((a, b) => (b[1] > a[1] ? b : a));
    throw new InvalidRequestError(
      `rendering the agent user data for instance ${input.instanceId}: ${bytes} bytes, more than ${input.maxBytes === undefined ? `the ${max} ${CLOUD_NAMES[input.metadata]}` : `maxBytes (${max})`} allows; the largest part is ${field} (${size} bytes)`,
    );
  }
  return text;
}

/** The input's limit: its `maxBytes` (a positive integer), else its cloud's. */
function userDataMaxBytes(input: AgentUserDataInput): number {
  // `metadata` is one of the clouds': agentConfigFor refused anything else (a bootstrap token needs it).
  if (input.maxBytes === undefined) return USER_DATA_MAX_BYTES[input.metadata];
  if (!Number.isSafeInteger(input.maxBytes) || input.maxBytes < 1) throw new InvalidRequestError(`rendering the agent user data for instance ${input.instanceId}: maxBytes must be a positive integer`);
  return input.maxBytes;
}

/** The shell script (bash) that installs and starts the agent with `config`. */
function agentScript(config: AgentConfig, install: string): string {
  const json = JSON.stringify(config, null, 2);
  // JSON never puts a raw newline inside a value, and each of its lines begins with a brace or a
  // space: no line of it can be the delimiter. Checked all the same.
  if (json.split('\n').some((line) => line === AGENT_CONFIG_MARKER)) throw new InvalidRequestError('rendering the agent user data: the agent config contains its own delimiter');
  // The unit deploy/systemd/drover-agent.service ships too (agent-unit.ts), ending in a newline.
  const unit = agentUnit(AGENT_PATHS.config);
  return `#!/bin/bash
# Drover agent bootstrap, rendered by Drover ${VERSION}. cloud-init runs it once, at first boot.
set -euo pipefail
umask 077
export HOME="\${HOME:-/root}"
log() { echo "drover-agent-bootstrap: $*"; }

# 1. Node.js 20.19 or later (from NodeSource unless the image has it).
node_ok() { command -v node >/dev/null 2>&1 && node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; }
if ! node_ok; then
  log "installing Node.js 20 from NodeSource"
  if command -v apt-get >/dev/null 2>&1; then
    curl -fsSL https://deb.nodesource.com/setup_20.x | bash -
    apt-get install -y nodejs
  elif command -v dnf >/dev/null 2>&1; then
    curl -fsSL https://rpm.nodesource.com/setup_20.x | bash -
    dnf install -y nodejs
  else
    curl -fsSL https://rpm.nodesource.com/setup_20.x | bash -
    yum install -y nodejs
  fi
fi
node_ok || { log "Node.js 20.19 or later is needed"; exit 1; }

# 2. The agent.
log "installing the Drover agent"
${install}
command -v drover >/dev/null 2>&1 || { log "the install left no drover command on the PATH"; exit 1; }

# 3. Its user and its config (a quoted heredoc: written as it is, nothing expanded).
id -u drover >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/drover-agent --no-create-home --shell /sbin/nologin drover
write_agent_config() {
  cat <<'${AGENT_CONFIG_MARKER}'
${json}
${AGENT_CONFIG_MARKER}
}
install -d -m 0755 /etc/drover
write_agent_config > ${AGENT_PATHS.config}.new
chown drover:drover ${AGENT_PATHS.config}.new
chmod 0600 ${AGENT_PATHS.config}.new
mv -f ${AGENT_PATHS.config}.new ${AGENT_PATHS.config}

# 4. The service.
cat > ${AGENT_PATHS.unit} <<'DROVER_AGENT_UNIT'
${unit}DROVER_AGENT_UNIT
chmod 0644 ${AGENT_PATHS.unit}

# 5. Start it.
systemctl daemon-reload
systemctl enable --now drover-agent.service
log "drover-agent.service started"
`;
}

/** The MIME type cloud-init knows the operator's user data by, from its first line. */
function partType(extra: string): string {
  const first = extra.trimStart().split('\n', 1)[0]?.trim() ?? '';
  if (first.startsWith('#cloud-config')) return 'text/cloud-config';
  if (first.startsWith('#!')) return 'text/x-shellscript';
  if (first.startsWith('#cloud-boothook')) return 'text/cloud-boothook';
  if (first.startsWith('#include')) return 'text/x-include-url';
  throw new InvalidRequestError('rendering the agent user data: extraUserData must start with #cloud-config, #! (a script), #cloud-boothook or #include');
}

/** A multipart/mixed message: the operator's part, then the agent's script. */
function multipart(script: string, extra: string): string {
  const type = partType(extra);
  const hash = createHash('sha256').update(extra).update('\0').update(script).digest('hex');
  let boundary = `==DROVER_${hash.slice(0, 32)}==`;
  for (let i = 0; extra.includes(boundary) || script.includes(boundary); i++) boundary = `==DROVER_${hash.slice(0, 32)}_${i}==`;
  const part = (contentType: string, name: string, body: string): string =>
    [
      `--${boundary}`,
      `Content-Type: ${contentType}; charset="utf-8"`,
      'MIME-Version: 1.0',
      'Content-Transfer-Encoding: 8bit',
      `Content-Disposition: attachment; filename="${name}"`,
      '',
      body.endsWith('\n') ? body : `${body}\n`,
    ].join('\n');
  return [`Content-Type: multipart/mixed; boundary="${boundary}"`, 'MIME-Version: 1.0', '', part(type, 'part-001-operator', extra) + part('text/x-shellscript', 'part-002-drover-agent.sh', script) + `--${boundary}--`, ''].join('\n');
}

/**
 * The agent config embedded in user data this module rendered (a script or a multipart; plain,
 * or base64 as EC2's API carries it), validated. Throws InvalidRequestError when there is none or
 * it does not validate.
 */
export function agentConfigFromUserData(text: string): AgentConfig {
  const found = embeddedConfig(text) ?? embeddedConfig(fromBase64(text));
  if (found === undefined) throw new InvalidRequestError(`reading the agent config from user data: none is embedded (between ${AGENT_CONFIG_MARKER} markers)`);
  let raw: unknown;
  try {
    raw = JSON.parse(found);
  } catch {
    throw new InvalidRequestError('reading the agent config from user data: the embedded config is not JSON');
  }
  const parsed = agentConfigSchema.safeParse(raw);
  if (!parsed.success) throw new InvalidRequestError(`reading the agent config from user data: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

function embeddedConfig(text: string): string | undefined {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const start = lines.findIndex((l) => l.trimEnd().endsWith(`<<'${AGENT_CONFIG_MARKER}'`));
  if (start < 0) return undefined;
  const end = lines.indexOf(AGENT_CONFIG_MARKER, start + 1);
  return end < 0 ? undefined : lines.slice(start + 1, end).join('\n');
}

function fromBase64(text: string): string {
  const compact = text.replace(/\s+/g, '');
  return /^[A-Za-z0-9+/]+={0,2}$/.test(compact) ? Buffer.from(compact, 'base64').toString('utf8') : '';
}

/** The template fields a cloud's bootstrap reads (both cloud templates have them). */
export interface BootstrapTemplateFields {
  command?: readonly string[] | undefined;
  drainCommand?: readonly string[] | undefined;
  healthCommand?: readonly string[] | undefined;
  healthCheckIntervalMs?: number | undefined;
  /** The operator's own cloud-init, run as well. */
  userData?: string | undefined;
}

/**
 * A cloud instance's user data for a create request: the agent bootstrap from the request's
 * `userData` (its servers, its one-time token; USER_DATA in providers/types.ts) and the template's
 * workload commands, with the template's own user data run as well. A create without Drover's
 * user data (a library user's) gets the template's alone. Refuses (permanently) user data that
 * carries no one-time token: a cloud instance never gets a long-lived credential.
 */
export function userDataForCreate(req: ProviderCreateRequest, template: BootstrapTemplateFields, options: { metadata: AgentUserDataMetadata; install?: string | undefined }): string | undefined {
  const data = req.userData;
  if (!data) return template.userData;
  const servers = (data[USER_DATA.server] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const bootstrapToken = data[USER_DATA.bootstrapToken];
  if (servers.length === 0 || !bootstrapToken) {
    throw new PermanentError(new InvalidRequestError(`creating ${req.idempotencyKey}: the user data lacks ${USER_DATA.server} or ${USER_DATA.bootstrapToken} (a cloud instance gets a one-time token, never a credential)`));
  }
  const serverCa = data[USER_DATA.serverCa];
  return renderAgentUserData({
    instanceId: data[USER_DATA.instanceId] ?? req.idempotencyKey,
    servers,
    bootstrapToken,
    ...(serverCa ? { serverCa } : {}),
    agent: {
      ...(template.command ? { command: template.command } : {}),
      ...(template.drainCommand ? { drainCommand: template.drainCommand } : {}),
      ...(template.healthCommand ? { healthCommand: template.healthCommand } : {}),
      ...(template.healthCheckIntervalMs !== undefined ? { healthCheckIntervalMs: template.healthCheckIntervalMs } : {}),
    },
    ...(options.install ? { install: options.install } : {}),
    metadata: options.metadata,
    ...(template.userData ? { extraUserData: template.userData } : {}),
  });
}
