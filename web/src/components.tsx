/** Shared pieces: dialogs, notices, block lists, counts and the virtualised table. */
import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { countdown, when } from './format.js';
import type { Block } from './types.js';

// ---- notices (the server's answers to actions) ---------------------------------------------

export interface Notice {
  key: number;
  text: string;
  kind: 'ok' | 'error';
}

type NoticeListener = (notices: Notice[]) => void;
let notices: Notice[] = [];
let noticeKey = 0;
const noticeListeners = new Set<NoticeListener>();

export function notify(text: string, kind: Notice['kind'] = 'ok'): void {
  const notice = { key: ++noticeKey, text, kind };
  notices = [notice, ...notices].slice(0, 4);
  for (const l of noticeListeners) l(notices);
  window.setTimeout(() => dismissNotice(notice.key), kind === 'ok' ? 8000 : 15000);
}

function dismissNotice(key: number): void {
  notices = notices.filter((n) => n.key !== key);
  for (const l of noticeListeners) l(notices);
}

export function Notices(): JSX.Element {
  const [list, setList] = useState(notices);
  useEffect(() => {
    noticeListeners.add(setList);
    return () => void noticeListeners.delete(setList);
  }, []);
  return (
    <div class="notices" role="status" aria-live="polite">
      {list.map((n) => (
        <div key={n.key} class={`notice notice-${n.kind}`}>
          <span>{n.text}</span>
          <button type="button" class="link" onClick={() => dismissNotice(n.key)} aria-label="Dismiss">
            ×
          </button>
        </div>
      ))}
    </div>
  );
}

// ---- dialog ---------------------------------------------------------------------------------

/** A modal <dialog>: focus moves in and is kept there; Escape and "Cancel" close it; focus returns where it was. */
export function Dialog(props: { title: string; onClose: () => void; children: ComponentChildren; wide?: boolean }): JSX.Element {
  const ref = useRef<HTMLDialogElement>(null);
  const onClose = useRef(props.onClose);
  onClose.current = props.onClose;
  useLayoutEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    if (!dialog.open) dialog.showModal();
    const close = (): void => onClose.current();
    dialog.addEventListener('close', close);
    return () => {
      dialog.removeEventListener('close', close);
      if (dialog.open) dialog.close();
      // The button that opened it may be gone (the caller lost the role meanwhile): the page's
      // heading, as after navigation, rather than nowhere.
      if (opener?.isConnected) opener.focus();
      else document.querySelector<HTMLElement>('main h1')?.focus();
    };
  }, []);
  const titleId = `dialog-title-${props.title.replace(/\W+/g, '-')}`;
  return (
    <dialog ref={ref} class={props.wide ? 'wide' : ''} aria-labelledby={titleId}>
      <h2 id={titleId}>{props.title}</h2>
      {props.children}
    </dialog>
  );
}

// ---- small displays -------------------------------------------------------------------------

export function BlockList({ blocks, now }: { blocks: Block[]; now: number }): JSX.Element | null {
  if (blocks.length === 0) return null;
  return (
    <ul class="blocks">
      {blocks.map((b, i) => (
        <li key={`${b.code}-${b.instanceId ?? ''}-${i}`}>
          <span class={`chip chip-${b.code}`}>{b.code}</span> {b.message}
          <BlockUntil until={b.until} now={now} />
        </li>
      ))}
    </ul>
  );
}

/** How long a timed block lasts, counting down: " (4m 10s left)", or " (overdue 3s)" once it is due. */
export function BlockUntil({ until, now }: { until: string | null | undefined; now: number }): JSX.Element | null {
  if (!until) return null;
  const c = countdown(until, now);
  return (
    <span class="muted" title={`until ${when(until)}`}>
      {' '}
      ({c.overdue ? c.text : `${c.text.replace(/^in /, '')} left`})
    </span>
  );
}

export function Count({ value, label, tone }: { value: number | string; label: string; tone?: 'bad' | 'warn' | 'good' | undefined }): JSX.Element {
  return (
    <div class={`count${tone ? ` tone-${tone}` : ''}`}>
      <dt>{label}</dt>
      <dd>{value}</dd>
    </div>
  );
}

export function ErrorText({ error }: { error: { status: number; message: string } | undefined | null }): JSX.Element | null {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error.status ? `HTTP ${error.status}: ` : ''}
      {error.message}
    </p>
  );
}

// ---- virtualised table ----------------------------------------------------------------------

export interface Column<T> {
  key: string;
  label: string;
  /** CSS width of the column (the table has a fixed layout: rows never reflow while scrolling). */
  width: string;
  cell: (row: T) => ComponentChildren;
  /** Row header cell (<th scope="row">) instead of <td>. */
  rowHeader?: boolean;
  sortable?: boolean;
  align?: 'right';
}

export interface Sort {
  key: string;
  dir: 'ascending' | 'descending';
}

const OVERSCAN = 8;

/**
 * A semantic <table> that renders only the rows in view (plus a few): 10,000 rows cost the DOM
 * about 40 <tr>. The scroll area is focusable, so arrow keys and Page Up/Down scroll it.
 */
export function VirtualTable<T>(props: {
  caption: string;
  rows: readonly T[];
  columns: Array<Column<T>>;
  rowKey: (row: T) => string;
  rowClass?: (row: T) => string;
  rowHeight?: number;
  sort?: Sort;
  onSort?: (key: string) => void;
  empty?: ComponentChildren;
  /** Called once, after the first frame that painted a data row (performance measurement). */
  onFirstRowPaint?: (ms: number) => void;
  testId?: string;
}): JSX.Element {
  const rowHeight = props.rowHeight ?? 36;
  const scroller = useRef<HTMLDivElement>(null);
  const [view, setView] = useState({ top: 0, height: 600 });
  const frame = useRef(0);

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const measure = (): void => setView({ top: el.scrollTop, height: el.clientHeight || 600 });
    measure();
    const onScroll = (): void => {
      if (frame.current) return;
      frame.current = requestAnimationFrame(() => {
        frame.current = 0;
        measure();
      });
    };
    el.addEventListener('scroll', onScroll, { passive: true });
    const observer = new ResizeObserver(measure);
    observer.observe(el);
    return () => {
      el.removeEventListener('scroll', onScroll);
      observer.disconnect();
      if (frame.current) cancelAnimationFrame(frame.current);
    };
  }, []);

  const total = props.rows.length;
  const first = Math.max(0, Math.floor(view.top / rowHeight) - OVERSCAN);
  const last = Math.min(total, Math.ceil((view.top + view.height) / rowHeight) + OVERSCAN);
  const visible = props.rows.slice(first, last);

  const painted = useRef(false);
  const onFirstRowPaint = props.onFirstRowPaint;
  useEffect(() => {
    if (painted.current || visible.length === 0) return;
    painted.current = true;
    // The callback after the next frame runs once that frame has been painted.
    requestAnimationFrame(() => window.setTimeout(() => onFirstRowPaint?.(performance.now()), 0));
  }, [visible.length, onFirstRowPaint]);

  return (
    <div class="table-scroll" ref={scroller} tabIndex={0} role="region" aria-label={props.caption} data-testid={props.testId} style={{ height: `${(Math.max(total, 1) + 1) * rowHeight + 4}px` }}>
      <table class="data virtual" aria-rowcount={total + 1}>
        <caption class="visually-hidden">{props.caption}</caption>
        <colgroup>
          {props.columns.map((c) => (
            <col key={c.key} style={{ width: c.width }} />
          ))}
        </colgroup>
        <thead>
          <tr aria-rowindex={1}>
            {props.columns.map((c) => {
              const sorted = props.sort?.key === c.key ? props.sort.dir : undefined;
              return (
                <th key={c.key} scope="col" aria-sort={sorted} class={c.align === 'right' ? 'num' : ''}>
                  {c.sortable && props.onSort ? (
                    <button type="button" class="sort" onClick={() => props.onSort?.(c.key)}>
                      {c.label}
                      <span aria-hidden="true">{sorted === 'ascending' ? ' ▲' : sorted === 'descending' ? ' ▼' : ''}</span>
                    </button>
                  ) : (
                    c.label
                  )}
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>
          {first > 0 ? (
            <tr class="spacer" aria-hidden="true" style={{ height: `${first * rowHeight}px` }}>
              <td colSpan={props.columns.length} />
            </tr>
          ) : null}
          {visible.map((row, i) => (
            <tr key={(first + i) % Math.max(1, last - first)} data-key={props.rowKey(row)} aria-rowindex={first + i + 2} class={props.rowClass?.(row) ?? ''} style={{ height: `${rowHeight}px` }}>
              {props.columns.map((c) =>
                c.rowHeader ? (
                  <th key={c.key} scope="row">
                    {c.cell(row)}
                  </th>
                ) : (
                  <td key={c.key} class={c.align === 'right' ? 'num' : ''}>
                    {c.cell(row)}
                  </td>
                ),
              )}
            </tr>
          ))}
          {last < total ? (
            <tr class="spacer" aria-hidden="true" style={{ height: `${(total - last) * rowHeight}px` }}>
              <td colSpan={props.columns.length} />
            </tr>
          ) : null}
          {total === 0 ? (
            <tr>
              <td colSpan={props.columns.length} class="empty">
                {props.empty ?? 'Nothing to show.'}
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
    </div>
  );
}
