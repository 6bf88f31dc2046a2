export { SingleNodeElector } from './elector.js';
export type { LeaderElector } from './elector.js';
