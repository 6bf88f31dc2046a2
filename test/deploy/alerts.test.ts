/**
 * deploy/prometheus: the alert rules pass `promtool check rules`, their unit tests pass
 * `promtool test rules`, and every metric they read is one a real Drover server exports.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { describeWithTool, findTool, PROMTOOL_TOOL } from '../helpers/tools.js';
import { exportedNames, metricNames, scrapeRealServer } from './promql.js';

const DIR = join(import.meta.dirname, '../../deploy/prometheus');
const RULES = join(DIR, 'drover-alerts.yml');
const TESTS = join(DIR, 'drover-alerts.test.yml');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function rules(): Rule[] {
  const doc = parse(readFileSync(RULES, 'utf8')) as { groups: { rules: Rule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

function promtool(...args: string[]): { status: number | null; output: string } {
  const res = spawnSync(findTool(PROMTOOL_TOOL)!, args, { cwd: DIR, encoding: 'utf8' });
  return { status: res.status, output: res.stdout + res.stderr };
}

describeWithTool(PROMTOOL_TOOL, 'the Prometheus alert rules in deploy/prometheus', () => {
  it('pass promtool check rules', () => {
    const res = promtool('check', 'rules', RULES);
    expect(res.output).toContain('SUCCESS');
    expect(res.status, res.output).toBe(0);
  });

  it('pass their promtool unit tests, which include cases where an alert must not fire', () => {
    const res = promtool('test', 'rules', TESTS);
    expect(res.status, res.output).toBe(0);
    expect(res.output).toContain('SUCCESS');
  });

  it('have a unit test for every alert', () => {
    const tests = parse(readFileSync(TESTS, 'utf8')) as { tests: { alert_rule_test?: { alertname: string }[] }[] };
    const tested = new Set(tests.tests.flatMap((t) => (t.alert_rule_test ?? []).map((a) => a.alertname)));
    for (const r of rules()) if (r.alert) expect(tested, r.alert).toContain(r.alert);
  });
});

describe('the Prometheus alert rules in deploy/prometheus', () => {
  it('each have a severity, a summary, a description and a for: duration', () => {
    const alerts = rules().filter((r) => r.alert);
    expect(alerts.length).toBeGreaterThan(0);
    for (const r of alerts) {
      expect(['page', 'warning'], r.alert).toContain(r.labels?.severity);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      expect(r.annotations?.description, r.alert).toBeTruthy();
      expect(r.for, r.alert).toMatch(/^\d+[smh]$/);
    }
  });

  describe('read only metrics a real Drover server exports', { timeout: 30_000 }, () => {
    let exported = new Set<string>();
    beforeAll(async () => {
      exported = exportedNames(await scrapeRealServer());
      expect(exported.size).toBeGreaterThan(20);
    }, 30_000);

    it('every metric named in every rule expression is on /metrics', () => {
      for (const r of rules()) {
        const names = metricNames(r.expr);
        expect(names.length, `${r.alert ?? r.record}: ${r.expr}`).toBeGreaterThan(0);
        for (const name of names) expect(exported, `${r.alert ?? r.record} reads ${name}`).toContain(name);
      }
    });
  });
});
