export { DroverMetrics, QUEUE_NAME } from './metrics.js';
export type { MetricsSources } from './metrics.js';
