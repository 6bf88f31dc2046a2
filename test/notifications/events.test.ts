/**
 * Which audit entries are notification events, and what a launch hook's event carries.
 */
import { describe, expect, it } from 'vitest';
import { eventOfAudit, slackText } from '../../src/notifications/events.js';
import type { AuditAction, AuditEntry } from '../../src/store/index.js';

const entry = (action: AuditAction, reason: string): AuditEntry => ({
  seq: 42,
  at: new Date('2026-02-02T10:00:00Z'),
  tenant: 'a',
  group: 'web',
  instanceId: 'i-1',
  action,
  reason,
  event: null,
  actor: 'reconciler',
  detail: 'launch hook not completed within 10m: onTimeout abandon',
  epoch: null,
});

describe('launch hook notifications', () => {
  it.each([
    ['launchHookContinued', 'continue', { result: 'continue', timedOut: false }],
    ['launchHookAbandoned', 'abandon', { result: 'abandon', timedOut: false }],
    ['launchHookTimedOut', 'continue', { result: 'continue', timedOut: true }],
    ['launchHookTimedOut', 'abandon', { result: 'abandon', timedOut: true }],
  ] as const)('makes %s (%s) a launchHookCompleted event carrying its result and whether it timed out', (action, reason, launchHook) => {
    const event = eventOfAudit(entry(action, reason), 'main');
    expect(event).toMatchObject({ id: 'ev-main-42', type: 'launchHookCompleted', instanceId: 'i-1', reason, launchHook });
    expect(slackText(event!)).toContain('launchHookCompleted a/web i-1');
  });

  it('carries no launchHook field on other events', () => {
    expect(eventOfAudit(entry('drain', 'unhealthy'), 'main')).not.toHaveProperty('launchHook');
  });
});
