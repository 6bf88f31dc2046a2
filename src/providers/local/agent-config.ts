/**
 * The agent config (`agent.json`) a local instance's agent starts from: its servers and
 * credential from the create request's user data, its workload commands from the template.
 * Templates are free-form in the config, so the fields this provider reads are checked here.
 */
import { join } from 'node:path';
import { agentConfigSchema, type AgentConfig } from '../../agent/config.js';
import type { TemplateSpec } from '../../config/index.js';
import { InvalidRequestError } from '../../errors/index.js';
import type { ProviderCreateRequest } from '../types.js';
import type { LocalInstancePaths } from './instance-store.js';

/** A template field that must be a non-empty array of non-empty strings when present. */
function commandField(template: TemplateSpec, field: string, id: string): string[] | undefined {
  const value = template[field];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0 || !value.every((v): v is string => typeof v === 'string' && v.length > 0)) {
    throw new InvalidRequestError(`local provider create ${id}: template.${field} must be a non-empty array of strings`);
  }
  return [...value];
}

/** The agent config for a create request. Throws InvalidRequestError for bad user data or template fields. */
export function buildAgentConfig(req: ProviderCreateRequest, paths: LocalInstancePaths): AgentConfig {
  const id = req.idempotencyKey;
  const servers = (req.userData?.DROVER_SERVER ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const credential = req.userData?.DROVER_AGENT_CREDENTIAL;
  if (servers.length === 0) throw new InvalidRequestError(`local provider create ${id}: userData.DROVER_SERVER is required`);
  if (!credential) throw new InvalidRequestError(`local provider create ${id}: userData.DROVER_AGENT_CREDENTIAL is required`);
  const command = commandField(req.template, 'command', id);
  const drainCommand = commandField(req.template, 'drainCommand', id);
  const healthCommand = commandField(req.template, 'healthCommand', id);
  const interval = req.template.healthCheckIntervalMs;
  const candidate = {
    instanceId: id,
    servers,
    credential,
    ...(command ? { command } : {}),
    ...(drainCommand ? { drainCommand } : {}),
    ...(healthCommand ? { healthCommand } : {}),
    noticeFile: paths.notice,
    pidFile: paths.pidFile,
    selfSocket: join(paths.dir, 'agent.sock'),
    ...(interval !== undefined ? { healthCheckIntervalMs: interval } : {}),
    // h-tls: the CA to verify the servers against (PEM), and the client certificate files for mutual TLS.
    ...(req.userData?.DROVER_SERVER_CA ? { serverCa: req.userData.DROVER_SERVER_CA } : {}),
    ...(req.userData?.DROVER_AGENT_CERT && req.userData.DROVER_AGENT_KEY ? { clientCert: req.userData.DROVER_AGENT_CERT, clientKey: req.userData.DROVER_AGENT_KEY } : {}),
  };
  const parsed = agentConfigSchema.safeParse(candidate);
  if (!parsed.success) {
    // Never echo the credential: report paths and messages only.
    throw new InvalidRequestError(`local provider create ${id}: invalid agent config: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}
