export { SimProvider } from './sim-provider.js';
export type { SimCall, SimInstance, SimOperation, SimProviderOptions } from './sim-provider.js';
