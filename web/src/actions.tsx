/**
 * What an operator can do from the page. Every action opens a dialog that says what will
 * happen, asks for confirmation, sends the request and reports the server's answer; an error is
 * shown as the server words it, and the dialog stays open to correct the input.
 */
import type { JSX } from 'preact';
import { useRef, useState } from 'preact/hooks';
import { api, ApiError, enc, get, type ApiAnswer } from './api.js';
import { Dialog, ErrorText, notify } from './components.js';
import { countdown, isProtected, sizeValue, when } from './format.js';
import type { Group, Instance, Plan, PlanAction } from './types.js';

interface Field {
  name: string;
  label: string;
  placeholder: string;
  initial: string;
  hint: string;
}

export interface InstanceAction {
  id: string;
  /** Button text. */
  label: string;
  /** Button text in a table row. */
  short: string;
  title: (i: Instance) => string;
  explain: (i: Instance) => string;
  field?: Field;
  checkbox?: { name: string; label: string };
  confirm: string;
  danger?: boolean;
  available: (i: Instance, now: number) => boolean;
  run: (i: Instance, values: Record<string, string | boolean>) => Promise<ApiAnswer<unknown>>;
  done: (i: Instance, answer: ApiAnswer<unknown>) => string;
}

const base = (i: Instance): string => `/v1/instances/${enc(i.id)}`;
const field = (body: unknown, name: string): string | null => {
  if (body && typeof body === 'object' && name in body) {
    const value = (body as Record<string, unknown>)[name];
    return typeof value === 'string' ? value : null;
  }
  return null;
};

export const INSTANCE_ACTIONS: InstanceAction[] = [
  {
    id: 'ack',
    label: 'Acknowledge',
    short: 'Ack',
    title: (i) => `Acknowledge the drain of ${i.id}`,
    explain: (i) => `The drain (${i.drainReason ?? 'drain'}) is complete: Drover deletes the instance now instead of waiting for its deadline.`,
    confirm: 'Acknowledge drain',
    available: (i) => i.status === 'draining',
    run: (i) => api('POST', `${base(i)}/drain-ack`),
    done: (i, a) => `Drain of ${i.id} acknowledged (HTTP ${a.status}): the instance is being deleted.`,
  },
  {
    id: 'extend',
    label: 'Extend',
    short: 'Extend',
    title: (i) => `Extend the drain of ${i.id}`,
    explain: (i) => `Moves the drain deadline${i.drainDeadline ? ` (now ${when(i.drainDeadline)})` : ''} later, to give the workload more time.`,
    field: { name: 'by', label: 'Extend by', placeholder: '10m', initial: '10m', hint: 'A duration: 30s, 10m, 1h30m.' },
    confirm: 'Extend deadline',
    available: (i) => i.status === 'draining',
    run: (i, v) => api('POST', `${base(i)}/drain-extend`, { by: String(v.by ?? '') }),
    done: (i, a) => `Drain of ${i.id} extended (HTTP ${a.status}): new deadline ${when(field(a.body, 'drainDeadline'))}.`,
  },
  {
    id: 'cancel',
    label: 'Cancel drain',
    short: 'Cancel',
    title: (i) => `Cancel the drain of ${i.id}`,
    explain: () => 'The instance goes back into service; Drover may start another drain if the reason still holds.',
    confirm: 'Cancel drain',
    available: (i) => i.status === 'draining',
    run: (i) => api('POST', `${base(i)}/drain-cancel`),
    done: (i, a) => `Drain of ${i.id} cancelled (HTTP ${a.status}).`,
  },
  {
    id: 'force',
    label: 'Force',
    short: 'Force',
    title: (i) => `Force the drain of ${i.id}`,
    explain: () => 'Deletes the instance now, without waiting for the workload to finish. Work in progress on it is lost.',
    confirm: 'Delete now',
    danger: true,
    available: (i) => i.status === 'draining',
    run: (i) => api('POST', `${base(i)}/drain-force`),
    done: (i, a) => `Drain of ${i.id} forced (HTTP ${a.status}): the instance is being deleted.`,
  },
  {
    id: 'drain',
    label: 'Drain',
    short: 'Drain',
    title: (i) => `Drain ${i.id}`,
    explain: () => 'Starts a graceful drain: a replacement is created, the workload is told to finish, and the instance is deleted on acknowledgement or at the deadline.',
    checkbox: { name: 'force', label: 'Even if it exceeds the disruption budget' },
    confirm: 'Start drain',
    available: (i) => i.status === 'running',
    run: (i, v) => api('POST', `${base(i)}/drain`, v.force === true ? { force: true } : {}),
    done: (i, a) => `Drain of ${i.id} started (HTTP ${a.status}).`,
  },
  {
    id: 'protect',
    label: 'Protect',
    short: 'Protect',
    title: (i) => `Protect ${i.id}`,
    explain: () => 'While protected, Drover does not drain the instance voluntarily (scale-down, expiry, template drift). It is still replaced if it fails.',
    field: { name: 'for', label: 'Protect for', placeholder: '2h', initial: '2h', hint: 'A duration: 30m, 2h, 1d.' },
    confirm: 'Protect',
    available: (i) => i.status === 'running' || i.status === 'creating',
    run: (i, v) => api('PUT', `${base(i)}/protection`, { for: String(v.for ?? '') }),
    done: (i, a) => `${i.id} is protected until ${when(field(a.body, 'protectedUntil'))} (HTTP ${a.status}).`,
  },
  {
    id: 'unprotect',
    label: 'Unprotect',
    short: 'Unprotect',
    title: (i) => `Remove the protection of ${i.id}`,
    explain: (i) => `The instance is protected${i.protectedUntil ? ` until ${when(i.protectedUntil)}` : ''}; without protection Drover may drain it voluntarily again.`,
    confirm: 'Remove protection',
    available: (i, now) => isProtected(i, now),
    run: (i) => api('DELETE', `${base(i)}/protection`),
    done: (i, a) => `Protection of ${i.id} removed (HTTP ${a.status}).`,
  },
];

export function ActionDialog({ action, instance, onClose }: { action: InstanceAction; instance: Instance; onClose: () => void }): JSX.Element {
  const [value, setValue] = useState(action.field?.initial ?? '');
  const [checked, setChecked] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const values: Record<string, string | boolean> = {};
      if (action.field) values[action.field.name] = value;
      if (action.checkbox) values[action.checkbox.name] = checked;
      const answer = await action.run(instance, values);
      notify(action.done(instance, answer));
      onClose();
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, String(err)));
      setBusy(false);
    }
  };
  const inputId = `action-${action.id}-input`;
  return (
    <Dialog title={action.title(instance)} onClose={onClose}>
      <form method="dialog" onSubmit={(e) => void submit(e)}>
        <p>{action.explain(instance)}</p>
        {action.field ? (
          <p class="field">
            <label for={inputId}>{action.field.label}</label>
            <input id={inputId} name={action.field.name} value={value} placeholder={action.field.placeholder} onInput={(e) => setValue(e.currentTarget.value)} autoFocus aria-describedby={`${inputId}-hint`} />
            <small id={`${inputId}-hint`} class="muted">
              {action.field.hint}
            </small>
          </p>
        ) : null}
        {action.checkbox ? (
          <p class="field checkbox">
            <label>
              <input type="checkbox" name={action.checkbox.name} checked={checked} onChange={(e) => setChecked(e.currentTarget.checked)} /> {action.checkbox.label}
            </label>
          </p>
        ) : null}
        <ErrorText error={error} />
        <div class="buttons">
          <button type="button" onClick={onClose}>
            Close
          </button>
          <button type="submit" class={action.danger ? 'danger' : 'primary'} disabled={busy} autoFocus={!action.field}>
            {busy ? 'Sending…' : action.confirm}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** Buttons for the actions available on an instance now. */
export function InstanceActions({ instance, now, onAction, compact }: { instance: Instance; now: number; onAction: (a: InstanceAction) => void; compact?: boolean }): JSX.Element {
  const available = INSTANCE_ACTIONS.filter((a) => a.available(instance, now));
  return (
    <span class={compact ? 'row-actions' : 'actions'}>
      {available.map((a) => (
        <button key={a.id} type="button" class={compact ? 'small' : ''} onClick={() => onAction(a)} aria-label={compact ? `${a.label} ${instance.id}` : undefined}>
          {compact ? a.short : a.label}
        </button>
      ))}
    </span>
  );
}

// ---- scale -----------------------------------------------------------------------------------

export function describeAction(a: PlanAction): string {
  switch (a.kind) {
    case 'create':
      return a.replaces ? `create a replacement for ${a.replaces} (${a.reason})` : `create an instance (${a.reason})`;
    case 'drain':
      return `drain ${a.instanceId} (${a.reason}), deadline ${when(a.deadline)}`;
    case 'delete':
      return `delete ${a.instanceId} (${a.reason})`;
    case 'cancelCreate':
      return `cancel the create of ${a.instanceId} (${a.reason})`;
    case 'forget':
      return `forget ${a.instanceId} (${a.reason})`;
    case 'check':
      return `check ${a.instanceId} with the provider (${a.cause})`;
    case 'dispatchCreate':
      return `send the recorded create of ${a.instanceId}`;
    case 'dispatchDelete':
      return `send the recorded delete of ${a.instanceId}`;
    case 'launchHook':
      return `complete the launch hook of ${a.instanceId} with ${a.result} (${a.cause === 'timeout' ? 'timed out' : 'no launch hook configured any more'})`;
  }
}

/** "would create 2", "would drain 3: i-a, i-b, i-c". */
export function summarisePlan(plan: Plan): string[] {
  const creates = plan.actions.filter((a) => a.kind === 'create').length;
  const drains = plan.actions.filter((a): a is Extract<PlanAction, { kind: 'drain' }> => a.kind === 'drain');
  const cancels = plan.actions.filter((a) => a.kind === 'cancelCreate').length;
  const deletes = plan.actions.filter((a) => a.kind === 'delete').length;
  const out: string[] = [];
  if (creates) out.push(`would create ${creates} instance${creates === 1 ? '' : 's'}`);
  if (drains.length) out.push(`would drain ${drains.length}: ${drains.map((d) => d.instanceId).join(', ')}`);
  if (cancels) out.push(`would cancel ${cancels} pending create${cancels === 1 ? '' : 's'}`);
  if (deletes) out.push(`would delete ${deletes} instance${deletes === 1 ? '' : 's'}`);
  if (out.length === 0) out.push('nothing to do now');
  return out;
}

export function PlanView({ plan, now, label }: { plan: Plan; now: number; label: string }): JSX.Element {
  return (
    <section class="plan" aria-label={label}>
      <p class="plan-summary">{summarisePlan(plan).join('; ')}.</p>
      {plan.actions.length ? (
        <ol class="plan-actions">
          {plan.actions.map((a, i) => (
            <li key={i}>
              <strong>{describeAction(a)}</strong>
              <br />
              <span class="muted">{a.message}</span>
            </li>
          ))}
        </ol>
      ) : null}
      {plan.blocked.length ? (
        <ul class="blocks">
          {plan.blocked.map((b, i) => (
            <li key={i}>
              <span class={`chip chip-${b.code}`}>{b.code}</span> {b.message}
            </li>
          ))}
        </ul>
      ) : null}
      {plan.wakeAt ? <p class="muted">Next look by time alone: {countdown(plan.wakeAt, now).text}.</p> : null}
    </section>
  );
}

/**
 * Scale: type a size, see the server's dry-run plan for it (GET .../plan?size=N), then apply.
 * The text is sent as typed: the server validates it and its error is shown.
 */
export function ScaleDialog({ group, onClose, now }: { group: Group; onClose: () => void; now: number }): JSX.Element {
  const [text, setText] = useState(String(group.size));
  const [preview, setPreview] = useState<{ size: string; plan: Plan } | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const input = useRef<HTMLInputElement>(null);
  const path = `/v1/groups/${enc(group.tenant)}/${enc(group.group)}`;
  const previewed = preview !== null && preview.size === text.trim();

  const doPreview = async (): Promise<void> => {
    setBusy(true);
    setError(null);
    setPreview(null);
    try {
      const plan = await get<Plan>(`${path}/plan?size=${enc(text.trim())}`);
      setPreview({ size: text.trim(), plan });
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, String(err)));
      input.current?.focus();
    } finally {
      setBusy(false);
    }
  };
  const apply = async (): Promise<void> => {
    setBusy(true);
    setError(null);
    try {
      const answer = await api<{ size: number; previousSize: number }>('PUT', `${path}/size`, { size: sizeValue(text) });
      notify(`${group.tenant}/${group.group} scaled from ${answer.body.previousSize} to ${answer.body.size} (HTTP ${answer.status}).`);
      onClose();
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, String(err)));
      setBusy(false);
      input.current?.focus();
    }
  };
  const submit = (e: Event): void => {
    e.preventDefault();
    void (previewed ? apply() : doPreview());
  };
  return (
    <Dialog title={`Scale ${group.tenant}/${group.group}`} onClose={onClose} wide>
      <form method="dialog" onSubmit={submit} class="scale-form">
        <p>
          Now: size {group.size}
          {group.sizeOverride !== null && group.configuredSize !== null ? ` (set by an operator; the config says ${group.configuredSize})` : ''}, {group.inService} in service.
        </p>
        <p class="field">
          <label for="scale-size">New size</label>
          <input
            id="scale-size"
            name="size"
            ref={input}
            inputMode="numeric"
            autoComplete="off"
            value={text}
            onInput={(e) => setText(e.currentTarget.value)}
            aria-describedby="scale-hint"
            aria-invalid={error ? 'true' : undefined}
            autoFocus
          />
          <small id="scale-hint" class="muted">
            Preview first: the server shows what it would do at that size. Nothing changes until you apply.
          </small>
        </p>
        <ErrorText error={error} />
        {preview && previewed ? <PlanView plan={preview.plan} now={now} label={`Dry-run plan at size ${preview.size}`} /> : null}
        <div class="buttons">
          <button type="button" onClick={onClose}>
            Close
          </button>
          <button type="submit" class="primary" disabled={busy}>
            {busy ? 'Sending…' : previewed ? `Apply size ${preview.size}` : 'Preview plan'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
