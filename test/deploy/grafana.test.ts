/**
 * deploy/grafana/drover-dashboard.json: a dashboard Grafana can import, whose every query reads
 * only metrics a real Drover server exports.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { describeWithTool, findTool, PROMTOOL_TOOL } from '../helpers/tools.js';
import { exportedNames, metricNames, scrapeRealServer } from './promql.js';

const FILE = join(import.meta.dirname, '../../deploy/grafana/drover-dashboard.json');

interface Target {
  refId?: string;
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id?: number;
  type: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  gridPos?: { h: number; w: number; x: number; y: number };
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  datasource?: { type?: string; uid?: string };
}
interface Dashboard {
  title?: string;
  uid?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: Variable[] };
}

const dashboard = JSON.parse(readFileSync(FILE, 'utf8')) as Dashboard;

/** Every panel, those inside collapsed rows too. */
function allPanels(panels: Panel[] = dashboard.panels ?? []): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}
const queryPanels = (): Panel[] => allPanels().filter((p) => p.type !== 'row');

/** Every PromQL expression: the panels' targets, and the metric of each label_values() variable. */
function expressions(): { where: string; expr: string }[] {
  const out = queryPanels().flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr ?? '' })));
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
    const m = /^label_values\((.*),\s*\w+\)$/.exec(q.trim());
    out.push({ where: `variable $${v.name}`, expr: m ? m[1]! : q });
  }
  return out;
}

describe('the Grafana dashboard in deploy/grafana', () => {
  it('has what Grafana needs to import it: a title, a uid, a schemaVersion of 36 or later and panels with positions', () => {
    expect(dashboard.title).toBeTruthy();
    expect(dashboard.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(queryPanels().length).toBeGreaterThan(0);
    const ids = allPanels().map((p) => p.id);
    expect(new Set(ids).size, 'panel ids are unique').toBe(ids.length);
    for (const p of allPanels()) {
      expect(p.gridPos, p.title).toBeDefined();
      expect(p.gridPos!.x + p.gridPos!.w, p.title).toBeLessThanOrEqual(24);
    }
  });

  it('asks for a Prometheus data source in a ${datasource} variable that every panel, target and query variable uses', () => {
    const ds = dashboard.templating?.list?.find((v) => v.name === 'datasource');
    expect(ds?.type).toBe('datasource');
    expect(ds?.query).toBe('prometheus');
    for (const p of queryPanels()) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? []) expect(t.datasource?.uid, `${p.title} ${t.refId}`).toBe('${datasource}');
    }
    for (const v of dashboard.templating?.list ?? []) if (v.type === 'query') expect(v.datasource?.uid, v.name).toBe('${datasource}');
  });

  it('has panels on the queue, reconciles, provider calls, instances by state, drains, agents, autoscale and webhooks', () => {
    const read = new Set(expressions().flatMap((e) => metricNames(e.expr)));
    // One metric per subject the dashboard must show (not a copy of the file: any panel reading it will do).
    for (const name of [
      'workqueue_depth',
      'drover_reconcile_total',
      'drover_provider_call_duration_seconds_count',
      'drover_provider_errors_total',
      'drover_instances',
      'drover_drains_total',
      'drover_agent_connections',
      'drover_autoscale_recommended_size',
      'drover_notification_deliveries_total',
      'drover_notification_pending',
      'drover_notification_dead_letters',
      'drover_notification_oldest_pending_age_seconds',
      'drover_notification_delivery_latency_seconds_bucket',
    ]) {
      expect(read, name).toContain(name);
    }
  });

  describe('reads only metrics a real Drover server exports', { timeout: 30_000 }, () => {
    let exported = new Set<string>();
    beforeAll(async () => {
      exported = exportedNames(await scrapeRealServer());
      expect(exported.size).toBeGreaterThan(20);
    }, 30_000);

    it('every metric named in every panel query and query variable is on /metrics', () => {
      const exprs = expressions();
      expect(exprs.length).toBeGreaterThan(10);
      for (const { where, expr } of exprs) {
        const names = metricNames(expr);
        expect(names.length, `${where}: ${expr}`).toBeGreaterThan(0);
        for (const name of names) expect(exported, `${where} reads ${name}`).toContain(name);
      }
    });
  });
});

describeWithTool(PROMTOOL_TOOL, 'the Grafana dashboard in deploy/grafana, read by promtool', () => {
  it('has only panel queries that parse as PromQL (Grafana variables replaced by values)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'drover-grafana-'));
    try {
      // Grafana's interval variables become durations, the others a regex that matches anything.
      const promql = (expr: string): string => expr.replace(/\$__rate_interval|\$__range|\$__interval/g, '5m').replace(/\$\w+/g, '.*');
      const rules = queryPanels().flatMap((p) => (p.targets ?? []).map((t, i) => ({ record: `panel_${p.id}_${i}`, expr: promql(t.expr ?? '') })));
      const file = join(dir, 'dashboard-exprs.yml');
      writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
      const res = spawnSync(findTool(PROMTOOL_TOOL)!, ['check', 'rules', file], { encoding: 'utf8' });
      expect(res.status, res.stdout + res.stderr).toBe(0);
      expect(res.stdout).toContain(`SUCCESS: ${rules.length} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
