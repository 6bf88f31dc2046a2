export { Autoscaler } from './autoscaler.js';
export type { AutoscaleGroupStatus, AutoscaleObserver, AutoscaleTarget, AutoscalerOptions, QueryResult } from './autoscaler.js';
export { EMPTY_AUTOSCALE_STATE, MAX_RECOMMENDATIONS, decideAutoscale, formatValue, keepRecommendations, maxStepDownOf, recommendSize } from './decide.js';
export type { AutoscaleInputs, AutoscaleOutcome, AutoscaleSettings, Reading, SizeChange } from './decide.js';
export { MAX_ANSWER_BYTES, PrometheusClient, displayUrl, valueOf } from './prometheus.js';
export type { Parsed, QueryAnswer, QuerySpec } from './prometheus.js';
