/** The fake Hetzner Cloud API and the fake Hetzner metadata service, for tests of the Hetzner provider. See README.md. */
export {
  DEFAULT_TOKEN,
  FakeHcloud,
  ROUTES,
  type FakeAction,
  type FakeHcloudOptions,
  type FakeServer,
  type FaultSpec,
  type RateLimitSpec,
  type RecordedCall,
  type RouteName,
  type ServerStatus,
  type UnavailableSpec,
} from './fake-hcloud.js';
export { DEFAULT_PER_PAGE, MAX_PER_PAGE, MAX_USER_DATA_BYTES, SERVER_STATUSES } from './model.js';
export { Catalog, DEFAULT_IMAGES, DEFAULT_LOCATIONS, DEFAULT_SERVER_TYPES, type ImageSpec, type LocationSpec, type ServerTypeSpec } from './catalog.js';
export { HcloudError, STATUS, statusFor } from './errors.js';
export { checkLabels, labelKeyProblem, labelValueProblem, matchesSelector, parseLabelSelector, type Requirement } from './labels.js';
export { FakeHetznerMetadata, type FakeHetznerMetadataOptions, type MetadataRequest, type MetadataServer } from './metadata.js';
export { hcloud, type HcloudAnswer, type HcloudClient, ManualClock } from './http.js';
