#!/usr/bin/env node
/**
 * `drover` — the command line. Commands that talk to a server read `--server`/DROVER_SERVER (one
 * URL or several replicas, comma-separated), `--token`/DROVER_TOKEN and, for https, `--ca`/DROVER_CA
 * and `--client-cert`/`--client-key` (DROVER_CLIENT_CERT/DROVER_CLIENT_KEY). Exit codes: 0 ok,
 * 1 the server (or a local step) failed the request, 2 bad command line, 3 server unreachable,
 * 4 `--wait` timed out (`scale --wait`, `notifications test --wait`).
 * Heavy modules (server, SQLite) load only for the commands that need them.
 */
import { Command, CommanderError, Option } from 'commander';
import { VERSION } from '../app/version.js';
import { CliError, EXIT } from './client.js';
import type { SelfCommand } from './commands/self.js';

const print = (text: string): void => {
  process.stdout.write(`${text}\n`);
};

function globalOpts(cmd: Command): { server?: string; token?: string; ca?: string; clientCert?: string; clientKey?: string; output?: string } {
  return cmd.optsWithGlobals();
}

const program = new Command();
program
  .name('drover')
  .description('Drover keeps fleets of machines healthy: groups at size, unhealthy replacement, graceful drains, rotations.')
  .version(VERSION, '-V, --version', 'print the version of drover')
  .option('--server <urls>', 'Drover server URL, or several replicas comma-separated, tried in order (env DROVER_SERVER)', process.env.DROVER_SERVER)
  .option('--token <token>', 'API bearer token (env DROVER_TOKEN); sent only to the --server replicas')
  .option('--ca <file>', 'verify https servers against this CA (PEM) instead of the system CAs (env DROVER_CA)')
  .option('--client-cert <file>', 'client certificate (PEM) for servers that require mutual TLS (env DROVER_CLIENT_CERT)')
  .option('--client-key <file>', 'key of --client-cert (PEM) (env DROVER_CLIENT_KEY)')
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'wide', 'json']).default('table'))
  .showHelpAfterError()
  .exitOverride();

program
  .command('server')
  .description('run the Drover server (reconciler, admin API, agent endpoint)')
  .requiredOption('-c, --config <file>', 'config file (YAML)')
  .action(async (opts: { config: string }) => {
    const { runServer } = await import('./commands/server.js');
    await runServer(opts.config);
  });

program
  .command('agent')
  .description("run an instance's agent: reports health, forwards notices, runs drain commands")
  .requiredOption('-c, --config <file>', 'agent config (JSON), written by the provider')
  .action(async (opts: { config: string }) => {
    const { runAgentCommand } = await import('./commands/agent.js');
    await runAgentCommand(opts.config);
  });

program
  .command('status')
  .description('show every group: size and what sets it (config, schedule, operator, autoscale, asleep) and why, in service, pending, draining, unhealthy, what blocks it')
  .option('-w, --watch', 'keep showing it as things change')
  .action(async (opts: { watch?: boolean }, cmd: Command) => {
    const { status } = await import('./commands/admin.js');
    await status({ ...globalOpts(cmd), ...opts }, print);
  });

program
  .command('instances')
  .description('list instances')
  .argument('[group]', '<tenant>/<group> to list')
  .option('--tenant <tenant>', 'only this tenant')
  .option('-a, --all', 'include deleted instances')
  .action(async (group: string | undefined, opts: { tenant?: string; all?: boolean }, cmd: Command) => {
    const { instances } = await import('./commands/admin.js');
    await instances({ ...globalOpts(cmd), ...opts, ...(group ? { group } : {}) }, print);
  });

program
  .command('scale')
  .description("set a group's size (kept until changed again, through the API or the config file, or until the group's next schedule fires)")
  .argument('<group>', '<tenant>/<group>')
  .argument('<size>', 'new size')
  .option('--wait', 'show progress until the group is in service at that size')
  .option('--timeout <duration>', 'give up waiting after this long (e.g. 5m)', '10m')
  .action(async (group: string, size: string, opts: { wait?: boolean; timeout?: string }, cmd: Command) => {
    const { scale } = await import('./commands/admin.js');
    const tty = process.stderr.isTTY;
    await scale(group, size, { ...globalOpts(cmd), ...opts }, print, (line, done) => {
      if (tty) process.stderr.write(`\r\x1b[2K${line}${done ? '\n' : ''}`);
      else process.stderr.write(`${line}\n`);
    });
  });

program
  .command('sleep')
  .description("put a tenant to sleep: its groups drain to 0 through their budgets, their sizes kept (audited)")
  .argument('<tenant>', 'tenant name')
  .option('--until <time>', 'wake it then: an ISO-8601 time (2026-11-29T18:00:00Z) or a duration from now (8h)')
  .action(async (tenant: string, opts: { until?: string }, cmd: Command) => {
    const { sleep } = await import('./commands/sleep.js');
    await sleep(tenant, { ...globalOpts(cmd), ...opts }, print);
  });

program
  .command('wake')
  .description('wake a sleeping tenant: its groups go back to their sizes (audited)')
  .argument('<tenant>', 'tenant name')
  .action(async (tenant: string, _opts: unknown, cmd: Command) => {
    const { wake } = await import('./commands/sleep.js');
    await wake(tenant, globalOpts(cmd), print);
  });

program
  .command('tenants')
  .description('list tenants, their groups, and whether they sleep')
  .action(async (_opts: unknown, cmd: Command) => {
    const { tenants } = await import('./commands/sleep.js');
    await tenants(globalOpts(cmd), print);
  });

const drain = program.command('drain').description('drain controls');
drain
  .command('ack')
  .description('acknowledge that a draining instance has finished its work (it is deleted)')
  .argument('<instance>', 'instance id')
  .action(async (id: string, _opts: unknown, cmd: Command) => {
    const { drainAck } = await import('./commands/admin.js');
    await drainAck(id, globalOpts(cmd), print);
  });

drain
  .command('start')
  .description('drain an instance: its replacement is created first (refused when the disruption budget is spent, unless --force)')
  .argument('<instance>', 'instance id')
  .option('--force', 'drain even when the disruption budget is spent')
  .action(async (id: string, opts: { force?: boolean }, cmd: Command) => {
    const { drainStart } = await import('./commands/disruption.js');
    await drainStart(id, { ...globalOpts(cmd), ...opts }, print);
  });
drain
  .command('extend')
  .description('move a drain deadline later (capped by the group\'s maxDrainTimeout)')
  .argument('<instance>', 'instance id')
  .argument('<duration>', 'how much later, e.g. 10m')
  .action(async (id: string, by: string, _opts: unknown, cmd: Command) => {
    const { drainExtend } = await import('./commands/disruption.js');
    await drainExtend(id, by, globalOpts(cmd), print);
  });
drain
  .command('cancel')
  .description('cancel an operator, expiry or drift drain: the instance returns to service')
  .argument('<instance>', 'instance id')
  .action(async (id: string, _opts: unknown, cmd: Command) => {
    const { drainCancel } = await import('./commands/disruption.js');
    await drainCancel(id, globalOpts(cmd), print);
  });
drain
  .command('force')
  .description('end a drain now: the instance is deleted')
  .argument('<instance>', 'instance id')
  .action(async (id: string, _opts: unknown, cmd: Command) => {
    const { drainForce } = await import('./commands/disruption.js');
    await drainForce(id, globalOpts(cmd), print);
  });

program
  .command('hook')
  .description('lifecycle hooks')
  .command('launch')
  .description("complete an instance's pending launch hook: continue (it may serve) or abandon (it is replaced)")
  .argument('<instance>', 'instance id')
  .option('--result <result>', 'continue | abandon', 'continue')
  .action(async (id: string, opts: { result?: string }, cmd: Command) => {
    const { hookLaunch } = await import('./commands/disruption.js');
    await hookLaunch(id, { ...globalOpts(cmd), ...opts }, print);
  });

program
  .command('protect')
  .description('protect an instance from voluntary disruption (scale-down, expiry, drift, operator drains) for a while')
  .argument('<instance>', 'instance id')
  .option('--for <duration>', 'how long, e.g. 2h', '1h')
  .option('--until <time>', 'until this ISO-8601 time instead')
  .action(async (id: string, opts: { for?: string; until?: string }, cmd: Command) => {
    const { protect } = await import('./commands/disruption.js');
    await protect(id, { ...globalOpts(cmd), ...opts }, print);
  });

program
  .command('unprotect')
  .description('end the protection of an instance')
  .argument('<instance>', 'instance id')
  .action(async (id: string, _opts: unknown, cmd: Command) => {
    const { unprotect } = await import('./commands/disruption.js');
    await unprotect(id, globalOpts(cmd), print);
  });

program
  .command('explain')
  .description('why is nothing happening? the dry-run plan with every block, the instance it concerns, and the budgets')
  .argument('<group>', '<tenant>/<group>')
  .action(async (group: string, _opts: unknown, cmd: Command) => {
    const { explain } = await import('./commands/disruption.js');
    await explain(group, globalOpts(cmd), print);
  });

program
  .command('plan')
  .description('show what the reconciler would do for a group now, and why (dry run)')
  .argument('<group>', '<tenant>/<group>')
  .action(async (group: string, _opts: unknown, cmd: Command) => {
    const { plan } = await import('./commands/admin.js');
    await plan(group, globalOpts(cmd), print);
  });

program
  .command('events')
  .description('follow the event stream (lifecycle changes, drains, errors)')
  .option('--type <type...>', 'only these event types (audit, drain, error, config, leader, health, rebalance)')
  .action(async (opts: { type?: string[] }, cmd: Command) => {
    const { events } = await import('./commands/admin.js');
    await events({ ...globalOpts(cmd), ...opts }, print);
  });

program
  .command('audit')
  .description('why each instance was created, drained, deleted')
  .option('--instance <id>', 'one instance')
  .option('--group <group>', '<tenant>/<group>')
  .option('--limit <n>', 'at most this many entries (newest)', '200')
  .action(async (opts: { instance?: string; group?: string; limit?: string }, cmd: Command) => {
    const { audit } = await import('./commands/admin.js');
    await audit({ ...globalOpts(cmd), ...opts }, print);
  });

const notifications = program.command('notifications').description('webhook endpoints: their backlog and dead letters, the delivery log, test events, redelivery');
notifications
  .command('list')
  .description('list the webhook endpoints: pending events and the age of the oldest, dead letters, circuit breaker')
  .action(async (_opts: unknown, cmd: Command) => {
    const { list } = await import('./commands/notifications.js');
    await list(globalOpts(cmd), print);
  });
notifications
  .command('log')
  .description('show deliveries, newest first: time, endpoint, event, state, attempts, last status, latency')
  .option('--endpoint <name>', 'only this endpoint')
  .option('--state <state>', 'only deliveries in this state (pending, delivered, dead)')
  .option('--event <id>', 'only the deliveries of this event id')
  .option('--limit <n>', 'at most this many deliveries (newest), up to 1000', '100')
  .option('-w, --watch', 'keep going: print each delivery that is new or changes (every 2s)')
  .action(async (opts: { endpoint?: string; state?: string; event?: string; limit?: string; watch?: boolean }, cmd: Command) => {
    const { log } = await import('./commands/notifications.js');
    await log({ ...globalOpts(cmd), ...opts }, print);
  });
notifications
  .command('test')
  .description('send a signed test event to one endpoint, through the outbox and retries as any event')
  .argument('<name>', 'endpoint name')
  .option('--wait', 'follow it until it is delivered (exit 0) or given up (exit 1)')
  .option('--timeout <duration>', 'give up waiting after this long (exit 4), e.g. 30s', '1m')
  .action(async (name: string, opts: { wait?: boolean; timeout?: string }, cmd: Command) => {
    const { test } = await import('./commands/notifications.js');
    await test(name, { ...globalOpts(cmd), ...opts }, print, (line) => process.stderr.write(`${line}\n`));
  });
notifications
  .command('redeliver')
  .description('send dead letters again: the deliveries given (ids from `notifications log --state dead`), or every one of --endpoint')
  .argument('[ids...]', 'delivery ids')
  .option('--endpoint <name>', 'every dead letter of this endpoint')
  .action(async (ids: string[], opts: { endpoint?: string }, cmd: Command) => {
    const { redeliver } = await import('./commands/notifications.js');
    await redeliver(ids, { ...globalOpts(cmd), ...opts }, print, (line) => process.stderr.write(`${line}\n`));
  });

const local = program.command('local').description('the local provider (instances are processes on this machine)');
local
  .command('notice')
  .description('make an instance see a termination notice, as a cloud gives one; it is terminated when the time is up')
  .argument('<instance>', 'instance id')
  .option('--in <duration>', 'time until termination', '2m')
  .option('--state-dir <dir>', 'local provider state folder (default: from --config, else ./.drover/local)')
  .option('-c, --config <file>', 'server config file, to find the state folder')
  .action(async (id: string, opts: { in: string; stateDir?: string; config?: string }) => {
    const { localNotice } = await import('./commands/local.js');
    print(await localNotice(id, opts));
  });

const selfCmd = program
  .command('self')
  .description("from inside an instance: ask its agent to protect it, for more time to drain, or to complete its launch hook")
  .option('--socket <path>', "the agent's socket (env DROVER_AGENT_SOCKET, set by the agent)");
const runSelf = async (request: SelfCommand, cmd: Command): Promise<void> => {
  const { selfCommand } = await import('./commands/self.js');
  await selfCommand(request, cmd.optsWithGlobals<{ socket?: string; output?: string }>(), print);
};
selfCmd
  .command('protect')
  .description('protect this instance from voluntary disruption (scale-down, rotation) for a while')
  .requiredOption('--for <duration>', 'how long (e.g. 30m, 2h)')
  .action((opts: { for: string }, cmd: Command) => runSelf({ op: 'protect', for: opts.for }, cmd));
selfCmd
  .command('unprotect')
  .description("end this instance's protection")
  .action((_opts: unknown, cmd: Command) => runSelf({ op: 'unprotect' }, cmd));
selfCmd
  .command('extend')
  .description("push this instance's drain deadline out (up to the group's maxDrainTimeout)")
  .argument('<duration>', 'by how much (e.g. 10m)')
  .action((by: string, _opts: unknown, cmd: Command) => runSelf({ op: 'extend', by }, cmd));
selfCmd
  .command('ready')
  .description("complete this instance's launch hook: it is ready to serve (continue)")
  .action((_opts: unknown, cmd: Command) => runSelf({ op: 'ready' }, cmd));
selfCmd
  .command('status')
  .description("what this instance's agent knows: connected, draining, protected")
  .action((_opts: unknown, cmd: Command) => runSelf({ op: 'status' }, cmd));

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') process.exit(EXIT.ok);
      process.exit(EXIT.usage);
    }
    if (err instanceof CliError) {
      process.stderr.write(`drover: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    process.stderr.write(`drover: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(EXIT.error);
  }
}

void main();
