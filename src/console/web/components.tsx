/** Small pieces every view uses: times, state badges, and the loading / error / empty states. */
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError } from './api';
import { localTime, utcTitle } from './lib/time';

export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <span class="muted">—</span>;
  return (
    <time dateTime={iso} title={utcTitle(iso)}>
      {localTime(iso)}
    </time>
  );
}

/** Red/green with a word, never colour alone. */
export function Verdict({
  ok,
  okText = 'ok',
  badText = 'attention',
}: {
  ok: boolean;
  okText?: string;
  badText?: string;
}) {
  return <span class={`badge ${ok ? 'good' : 'bad'}`}>{ok ? okText : badText}</span>;
}

export function StateBadge({ state }: { state: string }) {
  const tone = ['converged', 'done', 'completed', 'good', 'active', 'ok'].includes(state)
    ? 'good'
    : ['blocked', 'failed', 'revoked', 'retrying'].includes(state)
      ? 'bad'
      : 'neutral';
  return <span class={`badge ${tone}`}>{state}</span>;
}

export type Load<T> = { state: 'loading' } | { state: 'error'; error: Error } | { state: 'ready'; data: T };

/** Runs `load` when `deps` change; `reload()` runs it again. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): [Load<T>, () => void] {
  const [result, setResult] = useState<Load<T>>({ state: 'loading' });
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    let live = true;
    setResult((previous) => (previous.state === 'ready' ? previous : { state: 'loading' }));
    load().then(
      (data) => live && setResult({ state: 'ready', data }),
      (error: Error) => live && setResult({ state: 'error', error }),
    );
    return () => {
      live = false;
    };
  }, [...deps, generation]);
  return [result, () => setGeneration((g) => g + 1)];
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="loading" role="status">
      Loading {what}…
    </p>
  );
}

export function ErrorBox({ error, retry }: { error: Error; retry?: () => void }) {
  const code = error instanceof ApiError ? `${error.status} ${error.code}: ` : '';
  return (
    <div class="error" role="alert">
      <p>
        {code}
        {error.message}
      </p>
      {retry && (
        <button type="button" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}

/** Renders the three states of a Load; `children` gets the data. */
export function Loaded<T>({
  load,
  what,
  retry,
  children,
}: {
  load: Load<T>;
  what: string;
  retry?: () => void;
  children: (data: T) => ComponentChildren;
}) {
  if (load.state === 'loading') return <Loading what={what} />;
  if (load.state === 'error') return <ErrorBox error={load.error} retry={retry} />;
  return <>{children(load.data)}</>;
}

/** A table that scrolls sideways at high zoom; focusable so keyboard users can scroll it. */
export function TableScroll({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="table-scroll" tabIndex={0} role="region" aria-label={label}>
      {children}
    </div>
  );
}

export interface ViewProps {
  session: import('./lib/types').Session;
  capabilities: import('./lib/roles').Capabilities;
}
