/**
 * Fleet: region × target, desired vs delivered version, live over server-sent events. An event
 * refetches GET /v1/distribution (coalesced), so the grid is always the server's whole picture.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { get, post } from '../api';
import { Empty, ErrorBox, Loading, StateBadge, TableScroll, Time, type ViewProps } from '../components';
import {
  applyTargetEvent,
  filterAndSort,
  fleetRows,
  type FleetFilter,
  type FleetSortKey,
  type TargetEvent,
} from '../lib/fleet';
import { duration } from '../lib/time';
import type { DistributionStatus } from '../lib/types';

const COLUMNS: Array<{ key: FleetSortKey | null; label: string }> = [
  { key: 'region', label: 'Region' },
  { key: 'name', label: 'Target' },
  { key: null, label: 'Desired' },
  { key: null, label: 'Delivered' },
  { key: 'state', label: 'State' },
  { key: 'attempts', label: 'Attempts' },
  { key: null, label: 'Last error' },
  { key: 'converge', label: 'Time to converge' },
  { key: 'lag', label: 'Behind' },
];

export function FleetView({ capabilities }: ViewProps) {
  const [status, setStatus] = useState<DistributionStatus | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [live, setLive] = useState<'connecting' | 'live' | 'reconnecting'>('connecting');
  const [filter, setFilter] = useState<FleetFilter>({ text: '', state: 'all', region: '' });
  const [sort, setSort] = useState<{ key: FleetSortKey; descending: boolean }>({ key: 'region', descending: false });
  const [syncNote, setSyncNote] = useState<string | null>(null);
  const pending = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  useEffect(() => {
    let active = true;
    const refresh = () =>
      get<DistributionStatus>('/v1/distribution').then(
        (next) => active && (setStatus(next), setError(null)),
        (e: Error) => active && setError(e),
      );
    const soon = () => {
      if (pending.current === undefined)
        pending.current = setTimeout(() => ((pending.current = undefined), void refresh()), 250);
    };
    void refresh();
    // GET /v1/distribution/events: `target` carries one target's new status (applied in place, so a
    // busy fleet does not refetch 1,000 rows per change); anything else means "read the whole fleet again".
    const events = new EventSource('/v1/distribution/events');
    events.onopen = () => setLive('live');
    events.addEventListener('ready', soon);
    events.addEventListener('distribution', soon);
    events.addEventListener('resync', soon);
    events.addEventListener('target', (message) => {
      try {
        const event = JSON.parse((message as MessageEvent<string>).data) as TargetEvent;
        setStatus((current) => (current ? applyTargetEvent(current, event) : current));
      } catch {
        soon();
      }
    });
    // The session ended (signed out elsewhere, expired, token revoked): the next request says so and the page shows sign-in.
    events.addEventListener('session-ended', () => (events.close(), void refresh()));
    events.onerror = () => setLive('reconnecting');
    return () => {
      active = false;
      events.close();
      clearTimeout(pending.current);
    };
  }, []);

  const rows = useMemo(() => (status ? fleetRows(status) : []), [status]);
  const shown = useMemo(() => filterAndSort(rows, filter, sort.key, sort.descending), [rows, filter, sort]);
  const regions = useMemo(() => [...new Set(rows.map((r) => r.region))], [rows]);

  if (!status && error) return <ErrorBox error={error} />;
  if (!status) return <Loading what="the fleet" />;
  const sortBy = (key: FleetSortKey) => setSort((s) => ({ key, descending: s.key === key ? !s.descending : false }));
  return (
    <div>
      <p class="muted">
        <span role="status" data-testid="fleet-live">
          {live === 'live' ? 'Live' : live === 'connecting' ? 'Connecting…' : 'Reconnecting…'}
        </span>{' '}
        · {status.summary.converged} of {status.summary.targets} converged · updated <Time iso={status.generatedAt} />
        {capabilities.sync && (
          <>
            {' '}
            <button
              type="button"
              onClick={() =>
                post('/v1/distribution/sync').then(
                  () => setSyncNote('Reconcile requested.'),
                  (e: Error) => setSyncNote(e.message),
                )
              }
            >
              Reconcile now
            </button>
            {syncNote && <span role="status"> {syncNote}</span>}
          </>
        )}
      </p>
      {error && <ErrorBox error={error} />}
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter targets">
        <label for="fleet-text">Filter</label>
        <input
          id="fleet-text"
          value={filter.text}
          onInput={(e) => setFilter({ ...filter, text: (e.target as HTMLInputElement).value })}
          placeholder="region/target, endpoint, error"
        />
        <label for="fleet-state">State</label>
        <select
          id="fleet-state"
          value={filter.state}
          onChange={(e) =>
            setFilter({ ...filter, state: (e.target as HTMLSelectElement).value as FleetFilter['state'] })
          }
        >
          {['all', 'unhealthy', 'converged', 'pending', 'pushing', 'retrying', 'blocked'].map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <label for="fleet-region">Region</label>
        <select
          id="fleet-region"
          value={filter.region}
          onChange={(e) => setFilter({ ...filter, region: (e.target as HTMLSelectElement).value })}
        >
          <option value="">all</option>
          {regions.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
      </form>
      {rows.length === 0 ? (
        <Empty>No distribution targets yet: an admin declares regions and targets (POST /v1/regions).</Empty>
      ) : shown.length === 0 ? (
        <Empty>No target matches the filter.</Empty>
      ) : (
        <TableScroll label="Distribution targets">
          <table class="fleet" data-testid="fleet">
            <caption>
              {shown.length} of {rows.length} target(s)
            </caption>
            <thead>
              <tr>
                {COLUMNS.map((c) => (
                  <th
                    key={c.label}
                    scope="col"
                    aria-sort={c.key && sort.key === c.key ? (sort.descending ? 'descending' : 'ascending') : undefined}
                  >
                    {c.key ? (
                      <button type="button" class="sort" onClick={() => sortBy(c.key!)}>
                        {c.label}
                      </button>
                    ) : (
                      c.label
                    )}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {shown.map((row) => (
                <tr key={row.id} class={`state-${row.state}`} data-target={row.id} data-state={row.state}>
                  <td>
                    {row.region}
                    {row.offline && <span class="muted"> (offline)</span>}
                  </td>
                  <th scope="row">
                    {row.name}
                    {row.required && <span class="muted"> · required</span>}
                  </th>
                  <td>v{row.desired.version}</td>
                  <td>{row.delivered ? `v${row.delivered.version}` : '—'}</td>
                  <td>
                    <StateBadge state={row.state} />
                  </td>
                  <td>{row.attempts}</td>
                  <td class="error-cell">{row.lastError ? `${row.lastError.kind}: ${row.lastError.message}` : ''}</td>
                  <td>{row.convergeSeconds !== null ? duration(row.convergeSeconds) : '—'}</td>
                  <td>{row.lagSeconds > 0 ? duration(row.lagSeconds) : '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
    </div>
  );
}
