export { HCLOUD_PER_PAGE, HcloudClient, HcloudError } from './client.js';
export type { CreateServerRequest, HcloudAction, HcloudClientOptions, HcloudServer } from './client.js';
export { HetznerProvider, fromHcloudError, hetznerUserData } from './hetzner-provider.js';
export type { HetznerProviderOptions } from './hetzner-provider.js';
export { isLabelKey, isLabelValue, labelSelector, labelsFromTags, tagsFromLabels } from './labels.js';
