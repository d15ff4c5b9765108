/**
 * Revoke: find a certificate (serial, key, subject, or the artifact it signed), revoke it behind a
 * typed confirmation, then follow the revocation until every region holds the new bundle.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, get, post, query } from '../api';
import { Empty, ErrorBox, Loading, StateBadge, TableScroll, Time, type ViewProps } from '../components';
import { progressSteps, type RevocationProgress } from '../lib/revocation-progress';
import { duration } from '../lib/time';
import type { Certificate } from '../lib/types';

const SEARCH_KINDS = [
  { id: 'serial', label: 'Serial (hex)' },
  { id: 'key', label: 'Key name' },
  { id: 'subject', label: 'Subject contains' },
  { id: 'artifact', label: 'Artifact digest (what did this key sign?)' },
] as const;
type SearchKind = (typeof SEARCH_KINDS)[number]['id'];

export const REASONS = [
  'keyCompromise',
  'caCompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'unspecified',
] as const;

function Progress({ serial }: { serial: string }) {
  const [progress, setProgress] = useState<RevocationProgress | null>(null);
  const [error, setError] = useState<Error | null>(null);
  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const next = await get<RevocationProgress>(`/v1/certificates/${encodeURIComponent(serial)}/revocation`);
        if (!live) return;
        setProgress(next);
        setError(null);
        if (!(next.everywhere?.done ?? progressSteps(next).every((s) => s.done))) timer = setTimeout(poll, 1000);
      } catch (e) {
        if (!live) return;
        setError(e as Error);
        timer = setTimeout(poll, 3000);
      }
    };
    void poll();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [serial]);
  if (error && !progress) return <ErrorBox error={error} />;
  if (!progress) return <Loading what="revocation progress" />;
  const steps = progressSteps(progress);
  const done = progress.everywhere?.done ?? steps.every((s) => s.done);
  return (
    <section aria-labelledby="progress-h" class="progress">
      <h2 id="progress-h">Revocation of {serial}</h2>
      <p role="status" data-testid="revocation-summary">
        {done
          ? 'Revoked everywhere: signing stopped, OCSP and the CRL say revoked, every region holds the new bundle.'
          : 'Revocation in progress…'}
        {done && progress.everywhere?.seconds != null && ` (${duration(progress.everywhere.seconds)} in all)`}
      </p>
      <ol class="steps">
        {steps.map((step) => (
          <li key={step.id} class={step.done ? 'done' : 'waiting'} data-testid={`step-${step.id}`}>
            <StateBadge state={step.done ? 'done' : 'waiting'} /> {step.label}
            {step.at && (
              <>
                {' '}
                at <Time iso={step.at} />
              </>
            )}
            {step.seconds !== null && <> (took {duration(step.seconds)})</>}
            {step.note && <span class="muted"> — {step.note}</span>}
          </li>
        ))}
      </ol>
      {error && <ErrorBox error={error} />}
    </section>
  );
}

function RevokeForm({ certificate, onRevoked }: { certificate: Certificate; onRevoked: () => void }) {
  const [reason, setReason] = useState<string>('keyCompromise');
  const [invalidity, setInvalidity] = useState('');
  const [typed, setTyped] = useState('');
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const first = useRef<HTMLSelectElement>(null);
  useEffect(() => first.current?.focus(), []);
  const confirmation = certificate.serial.toLowerCase();
  const confirmed = typed.trim().toLowerCase() === confirmation;
  const submit = async (event: Event) => {
    event.preventDefault();
    if (!confirmed) return;
    setBusy(true);
    setError(null);
    try {
      await post(`/v1/certificates/${encodeURIComponent(certificate.serial)}/revoke`, {
        reason,
        ...(invalidity ? { invalidityDate: new Date(invalidity).toISOString() } : {}),
      });
      onRevoked();
    } catch (e) {
      setError(e as Error);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="revoke-form" onSubmit={submit} aria-labelledby="revoke-h">
      <h2 id="revoke-h">Revoke {certificate.subject}</h2>
      <p class="warning">
        Without an RFC 3161 timestamp, revoking a certificate invalidates every signature it ever made, whatever the
        reason or invalidity date.
      </p>
      <label for="reason">Reason</label>
      <select id="reason" ref={first} value={reason} onChange={(e) => setReason((e.target as HTMLSelectElement).value)}>
        {REASONS.map((r) => (
          <option key={r} value={r}>
            {r}
          </option>
        ))}
      </select>
      <label for="invalidity">Invalidity date (optional, your time zone)</label>
      <input
        id="invalidity"
        type="datetime-local"
        value={invalidity}
        onInput={(e) => setInvalidity((e.target as HTMLInputElement).value)}
      />
      <label for="confirm">
        Type the serial <code>{confirmation}</code> to confirm
      </label>
      <input
        id="confirm"
        autocomplete="off"
        spellcheck={false}
        value={typed}
        onInput={(e) => setTyped((e.target as HTMLInputElement).value)}
      />
      <button type="submit" class="danger" disabled={!confirmed || busy}>
        {busy ? 'Revoking…' : 'Revoke certificate'}
      </button>
      {error && <ErrorBox error={error} />}
    </form>
  );
}

export function RevokeView({ capabilities }: ViewProps) {
  const [kind, setKind] = useState<SearchKind>('serial');
  const [value, setValue] = useState('');
  const [results, setResults] = useState<
    | { state: 'idle' }
    | { state: 'loading' }
    | { state: 'error'; error: Error }
    | { state: 'ready'; certificates: Certificate[] }
  >({ state: 'idle' });
  const [selected, setSelected] = useState<Certificate | null>(null);
  const [following, setFollowing] = useState<string | null>(null);

  const search = async (event?: Event) => {
    event?.preventDefault();
    if (!value.trim()) return;
    setResults({ state: 'loading' });
    setSelected(null);
    try {
      const { certificates } = await get<{ certificates: Certificate[] }>(
        `/v1/certificates${query({ [kind]: value.trim() })}`,
      );
      setResults({ state: 'ready', certificates });
    } catch (e) {
      // A serial that does not exist is an empty result, not an error.
      if (e instanceof ApiError && e.status === 404) setResults({ state: 'ready', certificates: [] });
      else setResults({ state: 'error', error: e as Error });
    }
  };

  return (
    <div>
      <form class="search" onSubmit={search} role="search" aria-label="Find certificates">
        <label for="search-kind">Find by</label>
        <select
          id="search-kind"
          value={kind}
          onChange={(e) => setKind((e.target as HTMLSelectElement).value as SearchKind)}
        >
          {SEARCH_KINDS.map((k) => (
            <option key={k.id} value={k.id}>
              {k.label}
            </option>
          ))}
        </select>
        <label for="search-value">Value</label>
        <input
          id="search-value"
          value={value}
          autocomplete="off"
          spellcheck={false}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
          placeholder={kind === 'artifact' ? 'sha256:…' : ''}
        />
        <button type="submit">Search</button>
      </form>
      {results.state === 'idle' && (
        <Empty>Search for a certificate to see it and, with the right role, revoke it.</Empty>
      )}
      {results.state === 'loading' && <Loading what="certificates" />}
      {results.state === 'error' && <ErrorBox error={results.error} retry={() => void search()} />}
      {results.state === 'ready' &&
        (results.certificates.length === 0 ? (
          <Empty>No certificate matches.</Empty>
        ) : (
          <TableScroll label="Certificates found">
            <table data-testid="certificates">
              <caption>{results.certificates.length} certificate(s)</caption>
              <thead>
                <tr>
                  <th scope="col">Serial</th>
                  <th scope="col">Subject</th>
                  <th scope="col">Key</th>
                  <th scope="col">Valid until</th>
                  <th scope="col">Status</th>
                  <th scope="col">Action</th>
                </tr>
              </thead>
              <tbody>
                {results.certificates.map((c) => (
                  <tr key={c.serial}>
                    <td>
                      <code>{c.serial}</code>
                    </td>
                    <td>{c.subject}</td>
                    <td>
                      {c.key ? `${c.key}${c.keyVersion ? ` v${c.keyVersion}` : ''}` : c.kind}
                      {c.signatures && c.signatures.length > 0 && (
                        <span class="rule">
                          signed it {c.signatures.length}×, last{' '}
                          <Time iso={c.signatures[c.signatures.length - 1].time} /> (audit seq{' '}
                          {c.signatures.map((x) => x.seq).join(', ')})
                        </span>
                      )}
                    </td>
                    <td>
                      <Time iso={c.notAfter} />
                    </td>
                    <td>
                      <StateBadge state={c.status} />
                      {c.revokedAt && (
                        <>
                          {' '}
                          <Time iso={c.revokedAt} /> ({c.reason})
                        </>
                      )}
                    </td>
                    <td>
                      {c.status === 'revoked' ? (
                        <button
                          type="button"
                          aria-label={`Show revocation progress of ${c.serial}`}
                          onClick={() => setFollowing(c.serial)}
                        >
                          Show progress
                        </button>
                      ) : capabilities.revoke ? (
                        <button type="button" aria-label={`Revoke ${c.serial}…`} onClick={() => setSelected(c)}>
                          Revoke…
                        </button>
                      ) : (
                        <span class="muted">your role may not revoke</span>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableScroll>
        ))}
      {selected && capabilities.revoke && (
        <RevokeForm
          key={selected.serial}
          certificate={selected}
          onRevoked={() => {
            setFollowing(selected.serial);
            setSelected(null);
            void search();
          }}
        />
      )}
      {following && <Progress key={following} serial={following} />}
    </div>
  );
}
