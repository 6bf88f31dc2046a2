/**
 * The fake EC2's answers as EC2 writes them (API version 2016-11-15): the element names are the
 * `xmlName`s of the EC2 model the SDK deserializes with (`instancesSet`, `instanceState`,
 * `groupSet`, `tagSet`, … with list entries in `item`), so the real SDK reads them into its
 * typed outputs. Members EC2 leaves out when empty (an untagged instance has no `tagSet`) are
 * left out here too, so the SDK's outputs have the same `undefined`s.
 */
import type { Ec2Error } from './ec2-errors.js';
import { type InstanceView, type ReservationView, type StateChange, STATE_CODES } from './ec2-model.js';
import { document, el, frag, list, text, type Xml, type XmlContent } from './xml.js';

export const EC2_XMLNS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

function state(name: keyof typeof STATE_CODES): Xml[] {
  return [text('code', STATE_CODES[name]), text('name', name)];
}

/** EC2 shows launch times to the second. */
function launchTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString();
}

function instanceXml({ instance: d, shownState }: InstanceView, index: number, region: string): XmlContent[] {
  const tags = Object.entries(d.tags);
  const groups = d.securityGroupIds.length > 0 ? d.securityGroupIds.map((id) => ({ id, name: id })) : [{ id: 'sg-0000000000000000d', name: 'default' }];
  const hostname = `ip-${d.privateIpAddress.replaceAll('.', '-')}.${region}.compute.internal`;
  return [
    text('instanceId', d.instanceId),
    text('imageId', d.imageId),
    el('instanceState', ...state(shownState)),
    text('privateDnsName', shownState === 'terminated' ? '' : hostname),
    text('dnsName', ''),
    text('reason', d.stateTransitionReason),
    text('amiLaunchIndex', index),
    text('instanceType', d.instanceType),
    text('launchTime', launchTime(d.launchTime)),
    el('placement', text('availabilityZone', d.availabilityZone), text('groupName', ''), text('tenancy', 'default')),
    el('monitoring', text('state', 'disabled')),
    text('subnetId', d.subnetId),
    text('vpcId', d.vpcId),
    text('privateIpAddress', d.privateIpAddress),
    text('sourceDestCheck', true),
    list('groupSet', groups, (g) => [text('groupId', g.id), text('groupName', g.name)]),
    d.stateReason ? el('stateReason', text('code', d.stateReason.code), text('message', d.stateReason.message)) : undefined,
    text('architecture', 'x86_64'),
    text('rootDeviceType', 'ebs'),
    text('rootDeviceName', '/dev/xvda'),
    text('virtualizationType', 'hvm'),
    text('clientToken', d.clientToken),
    tags.length > 0 ? list('tagSet', tags, ([k, v]) => [text('key', k), text('value', v)]) : undefined,
    text('hypervisor', 'xen'),
    d.iamInstanceProfile ? el('iamInstanceProfile', text('arn', d.iamInstanceProfile.arn), text('id', d.iamInstanceProfile.id)) : undefined,
    text('ebsOptimized', false),
    text('enaSupport', true),
    text('instanceLifecycle', d.market === 'spot' ? 'spot' : undefined),
    text('spotInstanceRequestId', d.spotInstanceRequestId),
    el(
      'metadataOptions',
      text('state', 'applied'),
      text('httpTokens', d.httpTokens),
      text('httpPutResponseHopLimit', d.httpTokens === 'required' ? 2 : 1),
      text('httpEndpoint', 'enabled'),
      text('httpProtocolIpv6', 'disabled'),
      text('instanceMetadataTags', 'disabled'),
    ),
  ];
}

function reservationXml(r: ReservationView, region: string): Xml {
  return frag(
    text('reservationId', r.reservationId),
    text('ownerId', r.ownerId),
    el('groupSet'),
    list('instancesSet', r.instances.map((v, i) => [v, i] as const), ([v, i]) => instanceXml(v, i, region)),
  );
}

export function runInstancesXml(requestId: string, r: ReservationView, region: string): string {
  return document('RunInstancesResponse', EC2_XMLNS, text('requestId', requestId), reservationXml(r, region));
}

export function describeInstancesXml(requestId: string, reservations: readonly ReservationView[], nextToken: string | undefined, region: string): string {
  return document(
    'DescribeInstancesResponse',
    EC2_XMLNS,
    text('requestId', requestId),
    list('reservationSet', reservations, (r) => [reservationXml(r, region)]),
    text('nextToken', nextToken),
  );
}

export function terminateInstancesXml(requestId: string, changes: readonly StateChange[]): string {
  return document(
    'TerminateInstancesResponse',
    EC2_XMLNS,
    text('requestId', requestId),
    list('instancesSet', changes, (c) => [
      text('instanceId', c.instanceId),
      el('currentState', ...state(c.currentState)),
      el('previousState', ...state(c.previousState)),
    ]),
  );
}

/** CreateTags and DeleteTags answer only that they worked. */
export function returnTrueXml(action: string, requestId: string): string {
  return document(`${action}Response`, EC2_XMLNS, text('requestId', requestId), text('return', true));
}

/** An error, in EC2's shape (no namespace; `RequestID` spelled so). */
export function errorXml(requestId: string, error: Ec2Error): string {
  return document('Response', undefined, el('Errors', el('Error', text('Code', error.code), text('Message', error.message))), text('RequestID', requestId));
}
