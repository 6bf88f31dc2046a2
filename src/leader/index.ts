export { SingleNodeElector } from './elector.js';
export type { LeaderElector } from './elector.js';
export { EtcdElector, connectEtcd, etcdSecurityOptions, leaderKeyOf, leaderRecordSchema } from './etcd-elector.js';
export type { EtcdElectorOptions, EtcdSecurity, Fence, LeaderRecord } from './etcd-elector.js';
export { FencedProvider } from './fenced-provider.js';
export type { ProviderGuard } from './fenced-provider.js';
