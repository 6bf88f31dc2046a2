/**
 * The environment a local instance's processes start with: an allow-list of the server's, never
 * the whole of it, plus what the instance's template passes (`passEnv`) or sets (`env`), plus
 * the instance id. Everything here is pure: the server's environment comes in as an argument.
 */
import type { TemplateSpec } from '../../config/index.js';
import { InvalidRequestError, PermanentError } from '../../errors/index.js';

/** The environment variable every process of an instance carries. */
export const INSTANCE_ENV = 'DROVER_INSTANCE_ID';

/**
 * What an instance inherits from the server's environment: what a login shell would have (so
 * commands, locale, time zone and temp files behave as usual), the extra CAs Node trusts (a path
 * to public certificates, which the agent may need to verify an https server), and the log level.
 * Everything else stays with the server — credentials of all kinds live in environments
 * (cloud keys, database URLs, DROVER_TOKEN), and NODE_OPTIONS is left out on purpose: it makes
 * every Node process load code (`--require`, `--import`), the agent included. A template adds
 * more with `passEnv` or `env`. `NAME*` matches every variable whose name starts with NAME.
 */
export const INHERITED_ENV: readonly string[] = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_*', 'TZ', 'TMPDIR', 'TERM', 'SHELL', 'NODE_EXTRA_CA_CERTS', 'DROVER_LOG_LEVEL'];

/**
 * Server secrets never copied into an instance, not even when a template's `passEnv` names them:
 * with the agent secret a workload could mint any instance's credential; the token is the
 * server's admin token. (A template may still give such a variable a value of its own in `env`.)
 */
export const WITHHELD_ENV: readonly string[] = ['DROVER_AGENT_SECRET', 'DROVER_TOKEN'];

/** Set by Drover itself for an instance's processes: a template may neither set nor pass them. */
const RESERVED_ENV: readonly string[] = [INSTANCE_ENV, 'DROVER_AGENT_SOCKET', 'DROVER_DRAIN_REASON', 'DROVER_DRAIN_DEADLINE'];

/** What a template adds to an instance's environment (template fields `passEnv` and `env`). */
export interface InstanceEnvSpec {
  /** Names (or `PREFIX*` patterns) copied from the server's environment when set there. */
  passEnv: readonly string[];
  /** Values set as given; they win over inherited ones. */
  env: Readonly<Record<string, string>>;
}

const NO_TEMPLATE_ENV: InstanceEnvSpec = { passEnv: [], env: {} };

function matchesAny(name: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (p.endsWith('*') ? name.startsWith(p.slice(0, -1)) : name === p));
}

/**
 * The environment of an instance's processes: the allow-listed part of the server's (`base`),
 * plus what the template passes or sets, plus the instance id. Nothing else of `base` is kept.
 */
export function instanceEnv(id: string, spec: InstanceEnvSpec = NO_TEMPLATE_ENV, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  const allowed = [...INHERITED_ENV, ...spec.passEnv];
  for (const [name, value] of Object.entries(base)) {
    if (value === undefined || WITHHELD_ENV.includes(name) || RESERVED_ENV.includes(name)) continue;
    if (matchesAny(name, allowed)) env[name] = value;
  }
  Object.assign(env, spec.env);
  env[INSTANCE_ENV] = id;
  return env;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PASS_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*\*?$/;

/**
 * The template's `passEnv` (a list of names or `PREFIX*` patterns) and `env` (a mapping of names
 * to strings; numbers and booleans are written as YAML gives them). Templates are free-form in
 * the config, so this provider checks its own fields: a bad one is a PermanentError, as retrying
 * the same template cannot help.
 */
export function templateEnv(template: TemplateSpec, id: string): InstanceEnvSpec {
  const refuse = (field: string, why: string): never => {
    throw new PermanentError(new InvalidRequestError(`creating instance ${id}: template field ${field}: ${why}`));
  };
  return { passEnv: templatePassEnv(template.passEnv, refuse), env: templateEnvValues(template.env, refuse) };
}

/** Throws (through `refuse`) the error for template field `field`. */
type Refuse = (field: string, why: string) => never;

function refuseReserved(field: string, name: string, refuse: Refuse): void {
  if (RESERVED_ENV.includes(name)) refuse(field, `${name} is set by Drover for every instance`);
}

function templatePassEnv(rawPass: unknown, refuse: Refuse): string[] {
  const passEnv: string[] = [];
  if (rawPass === undefined) return passEnv;
  if (!Array.isArray(rawPass)) refuse('passEnv', 'must be a list of variable names (NAME, or PREFIX* for every name starting with PREFIX)');
  rawPass.forEach((entry: unknown, i) => {
    if (typeof entry !== 'string' || !PASS_PATTERN.test(entry)) refuse(`passEnv[${i}]`, `${JSON.stringify(entry)} is not a variable name (NAME, or PREFIX* for every name starting with PREFIX)`);
    refuseReserved(`passEnv[${i}]`, entry, refuse);
    if (WITHHELD_ENV.includes(entry)) refuse(`passEnv[${i}]`, `${entry} is a secret of the server and is never passed to an instance`);
    passEnv.push(entry);
  });
  return passEnv;
}

function templateEnvValues(rawEnv: unknown, refuse: Refuse): Record<string, string> {
  const env: Record<string, string> = {};
  if (rawEnv === undefined) return env;
  if (rawEnv === null || typeof rawEnv !== 'object' || Array.isArray(rawEnv)) refuse('env', 'must be a mapping of variable names to values');
  for (const [name, value] of Object.entries(rawEnv as Record<string, unknown>)) {
    const field = `env.${name}`;
    if (!ENV_NAME.test(name)) refuse(field, 'not a variable name (letters, digits and _, not starting with a digit)');
    refuseReserved(field, name, refuse);
    let text: string;
    if (typeof value === 'string') text = value;
    else if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean') text = String(value);
    else text = refuse(field, `must be a string, number or boolean, got ${value === null ? 'null' : Array.isArray(value) ? 'a list' : typeof value}`);
    if (text.includes('\0')) refuse(field, 'must not contain a NUL character');
    env[name] = text;
  }
  return env;
}
