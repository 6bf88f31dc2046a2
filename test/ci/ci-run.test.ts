/**
 * `.ci/run`'s decisions, run for real with stand-ins for what it would change on the machine:
 * `id`, `apt-get`, `dpkg-query`, `systemctl` and `npm` are scripts that record their calls, and
 * the PATH holds nothing else but the few tools the script reads with (so etcd, promtool,
 * prometheus and chromium are missing unless a case puts one there). The Prometheus servers are real processes
 * named `prometheus` (a link to `sleep`): the one "the package started" and one the machine
 * already ran, which must survive.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CHROMIUM_TOOL, ETCD_TOOL, onPath, OPENSSL_TOOL, PROMTOOL_TOOL, SYSTEMD_ANALYZE_TOOL } from '../helpers/tools.js';

const SCRIPT = resolve('.ci/run');
const BASH = onPath('bash');
/**
 * Real tools linked into the stand-ins' PATH: what the script reads with, and pkill, so that a
 * script reaching for it would kill the machine's Prometheus here too.
 */
const HOST_TOOLS = ['cat', 'dirname', 'grep', 'pgrep', 'pkill'];

const STUBS: Record<string, string> = {
  id: 'echo "$STUB_UID"',
  'apt-get': `echo "apt-get $*" >> "$STUB_LOG"
[ "$1" = install ] || exit 0
[ -z "$STUB_APT_FAIL" ] || exit 100
for a in "$@"; do case "$a" in -*|install) ;; *) : > "$STUB_STATE/installed-$a" ;; esac; done
case " $* " in *" prometheus "*)
  if [ -n "$STUB_POSTINST_STARTS" ]; then
    # As the package's init script does: a server in the background, and a pidfile.
    "$STUB_FAKE/prometheus" 1000 > /dev/null 2>&1 &
    echo $! > "$STUB_STATE/started.pid"
    # Only once it runs under its name (else the script could look before the exec).
    while [ "$(cat /proc/$!/comm 2>/dev/null)" != prometheus ]; do :; done
    # A child that has not become prometheus yet: only the pidfile names it.
    "$STUB_FAKE/start-stop-daemon" 1000 > /dev/null 2>&1 &
    echo $! > "$STUB_STATE/pidfile.pid"
    echo $! > "$STUB_PIDFILE"
  fi ;;
esac`,
  'dpkg-query': `for a in "$@"; do pkg="$a"; done
if [ -e "$STUB_STATE/installed-$pkg" ]; then printf 'install ok installed'; exit 0; fi
echo "dpkg-query: no packages found matching $pkg" >&2
exit 1`,
  systemctl: 'echo "systemctl $*" >> "$STUB_LOG"',
  npm: 'echo "npm $* DROVER_REQUIRE_TOOLS=$DROVER_REQUIRE_TOOLS" >> "$STUB_LOG"',
};

interface Case {
  uid?: number;
  /** Stand-ins left out of the PATH (e.g. apt-get). */
  without?: string[];
  /** Tools present on the PATH. */
  tools?: string[];
  /** Packages installed before the run. */
  installed?: string[];
  aptFails?: boolean;
  /** The prometheus package's install starts a server (no policy-rc.d forbidding it). */
  postinstStarts?: boolean;
  systemd?: boolean;
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  calls: string[];
  startedPid: number | null;
  pidfilePid: number | null;
}

const dirs: string[] = [];
const procs: ChildProcess[] = [];
const pids: number[] = [];

afterEach(() => {
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const p of procs.splice(0)) p.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie (killed, not yet reaped by whoever adopted it) is not running.
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** A process named prometheus, as the machine's own server would be. */
function fakePrometheus(dir: string): ChildProcess {
  const proc = spawn(join(dir, 'prometheus'), ['1000'], { stdio: 'ignore' });
  procs.push(proc);
  return proc;
}

function setup(): { dir: string; fake: string } {
  const dir = mkdtempSync(join(tmpdir(), 'drover-ci-run-'));
  dirs.push(dir);
  const fake = join(dir, 'fake');
  mkdirSync(fake);
  const sleep = onPath('sleep')!;
  symlinkSync(sleep, join(fake, 'prometheus'));
  symlinkSync(sleep, join(fake, 'start-stop-daemon'));
  return { dir, fake };
}

function run(dir: string, fake: string, c: Case): Run {
  const bin = join(dir, 'bin');
  const state = join(dir, 'state');
  mkdirSync(bin);
  mkdirSync(state);
  for (const tool of HOST_TOOLS) symlinkSync(onPath(tool)!, join(bin, tool));
  for (const [name, body] of Object.entries(STUBS)) {
    if (c.without?.includes(name)) continue;
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  for (const tool of c.tools ?? []) {
    writeFileSync(join(bin, tool), '#!/bin/sh\n');
    chmodSync(join(bin, tool), 0o755);
  }
  for (const pkg of c.installed ?? []) writeFileSync(join(state, `installed-${pkg}`), '');
  const systemdDir = join(dir, 'systemd');
  if (c.systemd) mkdirSync(systemdDir);
  const log = join(dir, 'calls.log');
  const env: NodeJS.ProcessEnv = {
    PATH: bin,
    HOME: dir,
    STUB_UID: String(c.uid ?? 0),
    STUB_LOG: log,
    STUB_STATE: state,
    STUB_FAKE: fake,
    STUB_PIDFILE: join(dir, 'prometheus.pid'),
    DROVER_CI_PROMETHEUS_PIDFILE: join(dir, 'prometheus.pid'),
    DROVER_CI_SYSTEMD_DIR: systemdDir,
    ...(c.aptFails ? { STUB_APT_FAIL: '1' } : {}),
    ...(c.postinstStarts ? { STUB_POSTINST_STARTS: '1' } : {}),
  };
  const res = spawnSync(BASH!, [SCRIPT], { env, encoding: 'utf8', timeout: 20_000 });
  const pidIn = (file: string): number | null => (existsSync(join(state, file)) ? Number(readFileSync(join(state, file), 'utf8').trim()) : null);
  const out: Run = {
    status: res.status,
    stdout: res.stdout,
    stderr: res.stderr,
    calls: existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [],
    startedPid: pidIn('started.pid'),
    pidfilePid: pidIn('pidfile.pid'),
  };
  for (const pid of [out.startedPid, out.pidfilePid]) if (pid !== null) pids.push(pid);
  return out;
}

const ALL_PACKAGES = [ETCD_TOOL, PROMTOOL_TOOL, CHROMIUM_TOOL, OPENSSL_TOOL, SYSTEMD_ANALYZE_TOOL].map((t) => t.debianPackage);
const TESTS = ['npm ci --no-audit --no-fund DROVER_REQUIRE_TOOLS=1', 'npm test DROVER_REQUIRE_TOOLS=1'];

describe.skipIf(!BASH || process.platform !== 'linux')('.ci/run', () => {
  it('installs the Debian package of each missing tool (the ones the tests name), then runs the tests with DROVER_REQUIRE_TOOLS=1', () => {
    const { dir, fake } = setup();
    const r = run(dir, fake, {});
    expect(r.status, r.stderr).toBe(0);
    expect(r.calls).toEqual(['apt-get update -qq', `apt-get install -y -qq --no-install-recommends ${ALL_PACKAGES.join(' ')}`, ...TESTS]);
  });

  it('installs only what is missing, and nothing when every tool is there', () => {
    const { dir, fake } = setup();
    expect(run(dir, fake, { tools: ['etcd', 'chromium', 'openssl', 'systemd-analyze'] }).calls).toEqual(['apt-get update -qq', 'apt-get install -y -qq --no-install-recommends prometheus', ...TESTS]);
    const again = setup();
    expect(run(again.dir, again.fake, { tools: ['etcd', 'promtool', 'prometheus', 'chromium', 'openssl', 'systemd-analyze'] }).calls).toEqual(TESTS);
  });

  it('installs the prometheus package when the prometheus server is missing, even with promtool there (the autoscale e2e test runs the server)', () => {
    const { dir, fake } = setup();
    expect(run(dir, fake, { tools: ['etcd', 'promtool', 'chromium', 'openssl', 'systemd-analyze'] }).calls).toEqual(['apt-get update -qq', 'apt-get install -y -qq --no-install-recommends prometheus', ...TESTS]);
  });

  it('as non-root, or without apt-get, warns and still runs the tests (which then fail for the missing tools)', () => {
    const user = setup();
    const r = run(user.dir, user.fake, { uid: 1000 });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`warning: not root; cannot install ${ALL_PACKAGES.join(' ')}`);
    expect(r.calls).toEqual(TESTS);
    const noApt = setup();
    const n = run(noApt.dir, noApt.fake, { without: ['apt-get'] });
    expect(n.status).toBe(0);
    expect(n.stderr).toContain('warning: no apt-get');
    expect(n.calls).toEqual(TESTS);
  });

  it('without systemd, stops the Prometheus the package install started (and the child its pidfile names), not one that ran before', () => {
    const { dir, fake } = setup();
    const users = fakePrometheus(fake);
    const r = run(dir, fake, { postinstStarts: true });
    expect(r.status, r.stderr).toBe(0);
    expect(r.startedPid).not.toBeNull();
    expect(r.stdout).toContain(`stopping the prometheus server (pid ${r.startedPid})`);
    expect(r.stdout).toContain(`stopping the prometheus server (pid ${r.pidfilePid})`);
    expect(r.stdout).not.toContain(`(pid ${users.pid})`);
    expect(r.calls.some((c) => c.startsWith('systemctl'))).toBe(false);
    // SIGTERM reached them; they end once the signal is delivered.
    return expect.poll(() => [alive(r.startedPid!), alive(r.pidfilePid!), alive(users.pid!)], { timeout: 5_000 }).toEqual([false, false, true]);
  });

  it('with systemd, stops the prometheus service the install started, and kills nothing', () => {
    const { dir, fake } = setup();
    const users = fakePrometheus(fake);
    const r = run(dir, fake, { postinstStarts: true, systemd: true });
    expect(r.status, r.stderr).toBe(0);
    expect(r.calls).toContain('systemctl stop prometheus');
    expect(alive(users.pid!)).toBe(true);
    expect(alive(r.startedPid!)).toBe(true); // systemctl is a stand-in here: it stopped nothing
  });

  it('leaves every Prometheus alone when it did not install the package: promtool and prometheus present, the package already there, or the install failed', () => {
    for (const c of [{ tools: ['promtool', 'prometheus'] }, { installed: ['prometheus'] }, { aptFails: true }] satisfies Case[]) {
      const { dir, fake } = setup();
      const users = fakePrometheus(fake);
      const r = run(dir, fake, { ...c, systemd: true });
      expect(r.status, `${JSON.stringify(c)}: ${r.stderr}`).toBe(0);
      expect(r.calls.filter((call) => call.startsWith('systemctl')), JSON.stringify(c)).toEqual([]);
      expect(r.stdout, JSON.stringify(c)).not.toContain('stopping the prometheus server');
      expect(alive(users.pid!), JSON.stringify(c)).toBe(true);
    }
  });
});
