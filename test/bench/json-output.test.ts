import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/** Runs the benchmark CLI (what `npm run bench` runs) and collects its streams and exit code. */
function bench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', 'bench/main.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    proc.on('error', reject);
    proc.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('bench --json', () => {
  it('prints one JSON object and nothing else on stdout, progress on stderr, and an exit code that follows the targets', async () => {
    const { code, stdout, stderr } = await bench(['--json', '--only', 'b1']);
    const parsed = JSON.parse(stdout) as { machine: { cores: number }; b1?: { met: boolean; ratio: number }; missed: string[]; errors?: Record<string, string> };
    expect(parsed.errors).toBeUndefined();
    expect(parsed.machine.cores).toBeGreaterThan(0);
    expect(typeof parsed.b1?.met).toBe('boolean');
    expect(parsed.missed).toEqual(parsed.b1?.met ? [] : ['b1']);
    expect(code).toBe(parsed.missed.length > 0 ? 1 : 0);
    expect(stderr).toContain('running b1');
  }, 120_000);

  it('refuses an unknown argument with exit code 2 and an empty stdout', async () => {
    const { code, stdout, stderr } = await bench(['--json', '--only', 'b99']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/unknown scenario "b99"/);
  });
});
