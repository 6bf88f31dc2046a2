import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function sim(args: string[]): { status: number | null; stdout: string } {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'sim/main.ts', ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: run.status, stdout: run.stdout };
}

describe('npm run sim', () => {
  it('runs N seeds in child processes and ends with one summary line, exit code 0 when nothing broke', () => {
    const { status, stdout } = sim(['--seeds', '3', '--from', '5', '--steps', '30', '--jobs', '2']);
    expect(stdout.trim().split('\n').at(-1)).toMatch(/^sim: 3 seeds, 0 violations, \d+\.\d s$/);
    expect(status).toBe(0);
  });

  it('replays one seed with its trace, and reports a violation with the seed, the invariant, a shrunk trace and how to replay it', () => {
    const { status, stdout } = sim(['--seed', '2', '--steps', '40', '--plant', 'leader', '--verbose']);
    expect(status).toBe(1);
    expect(stdout).toMatch(/^start 0:00:00 \d{4}-\d\d-\d\dT[\d:.]+Z fleet: /m);
    expect(stdout).toContain('seed 2: invariant 4: nothing is created, deleted or drained while not leader');
    expect(stdout).toMatch(/shrunk to \d+ of 40 steps/);
    expect(stdout).toMatch(/replay: npm run sim -- --seed 2 --plant leader --steps 40 --keep [\d,]+ --verbose/);
    expect(stdout.trim().split('\n').at(-1)).toMatch(/^sim: 1 seeds, 1 violations, \d+\.\d s$/);
  });

  it('refuses a bad command line with exit code 2', () => {
    expect(sim(['--seeds', 'many']).status).toBe(2);
    expect(sim(['--keep', '1,2']).status).toBe(2);
  });
});
