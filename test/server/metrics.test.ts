import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { TestServer } from '../helpers/server-harness.js';
import { findTool, itWithTool, PROMTOOL_TOOL } from '../helpers/tools.js';
import { freePort } from '../e2e/process-harness.js';

let t: TestServer | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe('metrics', () => {
  it('exposes queue, reconcile, provider, instance and drain metrics under their documented names', async () => {
    t = await new TestServer().start();
    await t.settle();
    await t.api('PUT', '/v1/groups/default/web/size', { size: 1 });
    await t.settle();
    const res = await fetch(`${t.url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    for (const name of [
      'workqueue_depth{name="drover_reconciler"}',
      'workqueue_adds_total{name="drover_reconciler"}',
      'workqueue_queue_duration_seconds_bucket',
      'workqueue_work_duration_seconds_bucket',
      'workqueue_unfinished_work_seconds',
      'workqueue_longest_running_processor_seconds',
      'workqueue_retries_total',
      'drover_reconcile_total{outcome="ok"}',
      'drover_reconcile_duration_seconds_bucket',
      'drover_provider_call_duration_seconds_bucket{le="0.005",operation="create"}',
      'drover_instances{tenant="default",group="web",status="draining"} 1',
      'drover_drains_total{reason="scaleDown"} 1',
      'drover_group_desired_size{tenant="default",group="web"} 1',
      'drover_leader 1',
    ]) {
      expect(text, name).toContain(name);
    }
  });

  itWithTool(PROMTOOL_TOOL, 'passes promtool check metrics (with an autoscaled group whose Prometheus does not answer)', async () => {
    const port = await freePort();
    t = await new TestServer({
      groups: {
        default: {
          web: { size: 2, template: 'web' },
          api: { size: 2, template: 'web', autoscale: { prometheus: `http://127.0.0.1:${port}`, query: 'sum(up)', targetPerInstance: 10, queryTimeout: '1s' } },
        },
      },
    }).start();
    await t.settle();
    let text = '';
    await expect
      .poll(async () => (text = await (await fetch(`${t!.url}/metrics`)).text()), { timeout: 10_000 })
      .toContain('drover_autoscale_blocked{tenant="default",group="api"} 1');
    expect(text).toContain('drover_autoscale_queries_total{result="error"} 1');
    const check = spawnSync(findTool(PROMTOOL_TOOL)!, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.stderr + check.stdout).toBe('');
    expect(check.status).toBe(0);
  });
});
