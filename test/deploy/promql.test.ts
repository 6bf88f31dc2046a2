import { describe, expect, it } from 'vitest';
import { exportedNames, metricNames } from './promql.js';

describe('the PromQL metric-name extractor the ops-file tests use', () => {
  it('finds the metrics of a quantile over a rate, and not its functions, labels, ranges or grouping', () => {
    expect(metricNames('histogram_quantile(0.99, sum by (le, name) (rate(workqueue_work_duration_seconds_bucket{name="drover_reconciler"}[$__rate_interval])))')).toEqual([
      'workqueue_work_duration_seconds_bucket',
    ]);
  });

  it('finds both sides of a ratio and ignores numbers, keywords and Grafana variables', () => {
    expect(
      metricNames('sum without (instance) (rate(drover_provider_errors_total{tenant=~"$tenant"}[5m] offset 1h)) / on (operation) group_left sum(rate(drover_provider_call_duration_seconds_count[5m])) > 0.25 and 1e3 > bool $x'),
    ).toEqual(['drover_provider_errors_total', 'drover_provider_call_duration_seconds_count']);
  });

  it('reads histogram types as their _bucket, _sum and _count series', () => {
    const names = exportedNames('# HELP a_seconds x\n# TYPE a_seconds histogram\na_seconds_bucket{le="1"} 0\n# TYPE b_total counter\n');
    expect([...names].sort()).toEqual(['a_seconds_bucket', 'a_seconds_count', 'a_seconds_sum', 'b_total']);
  });
});
