/** Rotations: the ones in progress with their steps, the root-rollover gate and whom it waits for, forcing it (admin). */
import { useState } from 'preact/hooks';
import { get, post } from '../api';
import { Empty, ErrorBox, Loaded, StateBadge, Time, useLoad, type ViewProps } from '../components';
import type { Rotation } from '../lib/types';

function ForceGate({ rotation, onForced }: { rotation: Rotation; onForced: () => void }) {
  const [reason, setReason] = useState('');
  const [error, setError] = useState<Error | null>(null);
  const id = `force-${rotation.id}`;
  return (
    <form
      class="force"
      onSubmit={(e) => {
        e.preventDefault();
        post(`/v1/rotations/${encodeURIComponent(rotation.id)}/force`, { reason }).then(onForced, (err: Error) =>
          setError(err),
        );
      }}
    >
      <label for={id}>Reason for forcing the gate (audited)</label>
      <input
        id={id}
        value={reason}
        required
        minLength={3}
        onInput={(e) => setReason((e.target as HTMLInputElement).value)}
      />
      <button type="submit" class="danger" disabled={reason.trim().length < 3}>
        Force the gate
      </button>
      {error && <ErrorBox error={error} />}
    </form>
  );
}

function RotationCard({ rotation, canForce, reload }: { rotation: Rotation; canForce: boolean; reload: () => void }) {
  const gate = rotation.steps.find((s) => s.name === 'distribution-gate');
  const waitsFor = (gate?.detail?.pending as string[] | undefined) ?? [];
  const gateClosed = gate && gate.state !== 'done' && gate.state !== 'skipped' && rotation.state === 'running';
  return (
    <article class="card" aria-labelledby={`rot-${rotation.id}`}>
      <h2 id={`rot-${rotation.id}`}>
        {rotation.kind === 'ca' ? 'CA' : 'Key'} {rotation.subject}: {rotation.from ?? '—'} → {rotation.to}
      </h2>
      <p>
        <StateBadge state={rotation.state} /> {rotation.trigger}, started <Time iso={rotation.startedAt} />
        {rotation.reason && <> · reason: {rotation.reason}</>}
      </p>
      {rotation.alert && (
        <p class="error" role="alert">
          {rotation.alert}
        </p>
      )}
      <ol class="steps">
        {rotation.steps.map((s) => (
          <li key={s.name} class={s.state}>
            <StateBadge state={s.state} /> {s.name}
            {s.finishedAt && (
              <>
                {' '}
                done <Time iso={s.finishedAt} />
              </>
            )}
            {s.waitingFor && <span class="muted"> — waiting for {s.waitingFor}</span>}
            {s.waitingUntil && (
              <span class="muted">
                {' '}
                (next look <Time iso={s.waitingUntil} />)
              </span>
            )}
            {s.error && <span class="error"> {s.error}</span>}
          </li>
        ))}
      </ol>
      {gateClosed && (
        <div class="gate">
          <p>
            Root-rollover gate: the new root is used once every required target read back a bundle with it.{' '}
            {waitsFor.length > 0 ? <>Waiting for: {waitsFor.join(', ')}.</> : 'Waiting for the next check.'}
          </p>
          {canForce ? (
            <ForceGate rotation={rotation} onForced={reload} />
          ) : (
            <p class="muted">Only an admin may force the gate.</p>
          )}
        </div>
      )}
    </article>
  );
}

export function RotationsView({ capabilities }: ViewProps) {
  const [load, reload] = useLoad(async () => {
    const [running, activated] = await Promise.all([
      get<{ rotations: Rotation[] }>('/v1/rotations?state=running'),
      get<{ rotations: Rotation[] }>('/v1/rotations?state=activated'),
    ]);
    return [...running.rotations, ...activated.rotations];
  }, []);
  return (
    <Loaded load={load} what="rotations" retry={reload}>
      {(rotations) =>
        rotations.length === 0 ? (
          <Empty>No rotation in progress.</Empty>
        ) : (
          <div>
            <button type="button" onClick={reload}>
              Refresh
            </button>
            {rotations.map((r) => (
              <RotationCard key={r.id} rotation={r} canForce={capabilities.forceRotation} reload={reload} />
            ))}
          </div>
        )
      }
    </Loaded>
  );
}
