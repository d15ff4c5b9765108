/** Audit: filter by actor, event, key, artifact and time; verify the chain; the signed checkpoints. */
import { useState } from 'preact/hooks';
import { get, post, query } from '../api';
import { Empty, ErrorBox, Loaded, Loading, TableScroll, Time, useLoad, Verdict, type ViewProps } from '../components';
import type { AuditCheckpoint, AuditEvent, AuditVerifyResult } from '../lib/types';

interface AuditFilter {
  actor: string;
  type: string;
  key: string;
  artifact: string;
  since: string;
  until: string;
}

const EMPTY: AuditFilter = { actor: '', type: '', key: '', artifact: '', since: '', until: '' };
const FIELDS: Array<{ id: keyof AuditFilter; label: string; type?: 'text' | 'datetime-local'; placeholder?: string }> =
  [
    { id: 'actor', label: 'Actor (token name or id, workload sub)' },
    { id: 'type', label: 'Event type', placeholder: 'sign, certificate.revoked, …' },
    { id: 'key', label: 'Key' },
    { id: 'artifact', label: 'Artifact digest', placeholder: 'sha256:…' },
    { id: 'since', label: 'From (your time zone)', type: 'datetime-local' },
    { id: 'until', label: 'Until (your time zone)', type: 'datetime-local' },
  ];

function actorText(event: AuditEvent): string {
  const actor = event.actor;
  if (!actor) return 'system';
  if (actor.workload) return `${actor.workload.provider}: ${actor.workload.sub}`;
  return [actor.tokenName, actor.role && `(${actor.role})`].filter(Boolean).join(' ') || 'cli';
}

function artifactOf(event: AuditEvent): string | null {
  const artifact = event.data.artifact as { digest?: string } | undefined;
  return artifact?.digest ?? null;
}

function Events({ filter }: { filter: AuditFilter }) {
  const [load, reload] = useLoad(() => {
    const iso = (local: string) => (local ? new Date(local).toISOString() : undefined);
    return get<{ events: AuditEvent[]; next: string | null }>(
      `/v1/audit${query({ actor: filter.actor, type: filter.type, key: filter.key, artifact: filter.artifact, since: iso(filter.since), until: iso(filter.until), limit: 200, order: 'desc' })}`,
    );
  }, [filter]);
  return (
    <Loaded load={load} what="audit events" retry={reload}>
      {({ events }) =>
        events.length === 0 ? (
          <Empty>No audit event matches.</Empty>
        ) : (
          <TableScroll label="Audit events">
            <table data-testid="audit-events">
              <caption>{events.length} event(s)</caption>
              <thead>
                <tr>
                  <th scope="col">Seq</th>
                  <th scope="col">Time</th>
                  <th scope="col">Event</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Subject</th>
                  <th scope="col">Artifact</th>
                </tr>
              </thead>
              <tbody>
                {events.map((e) => (
                  <tr key={e.seq}>
                    <td>{e.seq}</td>
                    <td>
                      <Time iso={e.time} />
                    </td>
                    <td>{e.type}</td>
                    <td>{actorText(e)}</td>
                    <td>{e.subject ?? ''}</td>
                    <td>
                      <code class="digest">{artifactOf(e) ?? ''}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableScroll>
        )
      }
    </Loaded>
  );
}

function Verify() {
  const [state, setState] = useState<
    { s: 'idle' } | { s: 'running' } | { s: 'done'; result: AuditVerifyResult } | { s: 'error'; error: Error }
  >({ s: 'idle' });
  const run = (full: boolean) => {
    setState({ s: 'running' });
    get<AuditVerifyResult>(`/v1/audit/verify${full ? '?full=true' : ''}`).then(
      (result) => setState({ s: 'done', result }),
      (error: Error) => setState({ s: 'error', error }),
    );
  };
  return (
    <section aria-labelledby="verify-h">
      <h2 id="verify-h">Verify the chain</h2>
      <button type="button" onClick={() => run(false)} disabled={state.s === 'running'}>
        Verify from the last checkpoint
      </button>{' '}
      <button type="button" onClick={() => run(true)} disabled={state.s === 'running'}>
        Verify everything
      </button>
      {state.s === 'running' && <Loading what="the verification" />}
      {state.s === 'error' && <ErrorBox error={state.error} />}
      {state.s === 'done' && (
        <p role="status" data-testid="verify-result">
          <Verdict ok={state.result.ok} okText="chain intact" badText="chain broken" /> {state.result.checked} row(s)
          checked
          {state.result.firstBrokenSeq && <>; first bad sequence {state.result.firstBrokenSeq}</>}.
        </p>
      )}
    </section>
  );
}

function Checkpoints({ canCreate }: { canCreate: boolean }) {
  const [load, reload] = useLoad(
    () => get<{ checkpoints: AuditCheckpoint[] }>('/v1/audit/checkpoints?order=desc&limit=20'),
    [],
  );
  const [error, setError] = useState<Error | null>(null);
  return (
    <section aria-labelledby="cp-h">
      <h2 id="cp-h">Checkpoints</h2>
      {canCreate && (
        <button
          type="button"
          onClick={() =>
            post('/v1/audit/checkpoints').then(
              () => (setError(null), reload()),
              (e: Error) => setError(e),
            )
          }
        >
          Checkpoint now
        </button>
      )}
      {error && <ErrorBox error={error} />}
      <Loaded load={load} what="checkpoints" retry={reload}>
        {({ checkpoints }) =>
          checkpoints.length === 0 ? (
            <Empty>No checkpoint yet.</Empty>
          ) : (
            <TableScroll label="Checkpoints">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Seq</th>
                    <th scope="col">Time</th>
                    <th scope="col">Head hash</th>
                  </tr>
                </thead>
                <tbody>
                  {/* Newest first, as the API answers order=desc (the newest 20, however many there are). */}
                  {checkpoints.map((c) => (
                    <tr key={c.id}>
                      <td>{c.seq}</td>
                      <td>
                        <Time iso={c.time} />
                      </td>
                      <td>
                        <code class="digest">{c.hash}</code>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableScroll>
          )
        }
      </Loaded>
    </section>
  );
}

export function AuditView({ capabilities }: ViewProps) {
  const [draft, setDraft] = useState<AuditFilter>(EMPTY);
  const [filter, setFilter] = useState<AuditFilter>(EMPTY);
  return (
    <div>
      <form
        class="filters"
        aria-label="Filter audit events"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter({ ...draft });
        }}
      >
        {FIELDS.map((f) => (
          <span class="field" key={f.id}>
            <label for={`audit-${f.id}`}>{f.label}</label>
            {f.type === 'datetime-local' ? (
              <input
                id={`audit-${f.id}`}
                type="datetime-local"
                value={draft[f.id]}
                onInput={(e) => setDraft({ ...draft, [f.id]: (e.target as HTMLInputElement).value })}
              />
            ) : (
              <input
                id={`audit-${f.id}`}
                type="text"
                placeholder={f.placeholder}
                value={draft[f.id]}
                onInput={(e) => setDraft({ ...draft, [f.id]: (e.target as HTMLInputElement).value })}
              />
            )}
          </span>
        ))}
        <button type="submit">Apply filter</button>{' '}
        <button type="button" onClick={() => (setDraft(EMPTY), setFilter(EMPTY))}>
          Clear
        </button>
      </form>
      <Events filter={filter} />
      <Verify />
      <Checkpoints canCreate={capabilities.checkpoint} />
    </div>
  );
}
