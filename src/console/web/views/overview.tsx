/** Overview: expiry timeline, rotation calendar, CRL freshness, distribution health, checkpoint age. */
import { get, query } from '../api';
import { Empty, Loaded, TableScroll, Time, useLoad, Verdict, type ViewProps } from '../components';
import { crlDates } from '../lib/crl-dates';
import { checkpointVerdict, crlVerdict, distributionVerdict, expiryItems, rotationCalendar, type CrlItem, type ExpiryItem } from '../lib/status-rules';
import { duration } from '../lib/time';
import type { AuditCheckpoint, AuditEvent, Ca, DistributionStatus, Rotation, SigningKey } from '../lib/types';

interface OverviewData {
  now: Date;
  cas: Ca[];
  keys: SigningKey[];
  rotations: Rotation[];
  crls: CrlItem[];
  distribution: DistributionStatus;
  checkpoint: AuditCheckpoint | undefined;
  rowsAfterCheckpoint: boolean;
}

async function fetchCrl(generation: string, now: Date): Promise<CrlItem> {
  try {
    const response = await fetch(`/pki/${encodeURIComponent(generation)}.crl`, { cache: 'no-store' });
    if (!response.ok) return crlVerdict(generation, null, now, `GET /pki/${generation}.crl answered ${response.status}`);
    return crlVerdict(generation, crlDates(new Uint8Array(await response.arrayBuffer())), now);
  } catch (error) {
    return crlVerdict(generation, null, now, (error as Error).message);
  }
}

async function loadOverview(): Promise<OverviewData> {
  const now = new Date();
  const [{ cas }, { keys }, { rotations }, distribution, { checkpoints }] = await Promise.all([
    get<{ cas: Ca[] }>('/v1/cas'),
    get<{ keys: SigningKey[] }>('/v1/keys'),
    get<{ rotations: Rotation[] }>('/v1/rotations?limit=200'),
    get<DistributionStatus>('/v1/distribution'),
    get<{ checkpoints: AuditCheckpoint[] }>('/v1/audit/checkpoints?limit=1000'),
  ]);
  const checkpoint = checkpoints.at(-1);
  const after = await get<{ events: AuditEvent[] }>(`/v1/audit${query({ after: checkpoint?.seq ?? '0', limit: 1 })}`);
  // TSA CAs issue no CRL, and generations whose key is elsewhere (an offline root) sign theirs elsewhere.
  const crlGenerations = cas.filter((ca) => ca.kind !== 'tsa' && ca.kind !== 'tsa-root' && !(ca.kind === 'root' && ca.external)).flatMap((ca) => ca.generations.filter((g) => g.notAfter && new Date(g.notAfter) > now && g.state !== 'pending'));
  const crls = await Promise.all(crlGenerations.map((g) => fetchCrl(g.name, now)));
  return { now, cas, keys, rotations, crls, distribution, checkpoint, rowsAfterCheckpoint: after.events.length > 0 };
}

function Timeline({ items, now }: { items: ExpiryItem[]; now: Date }) {
  if (items.length === 0) return <Empty>No CA generation or active leaf certificate yet.</Empty>;
  const start = Math.min(now.getTime(), ...items.map((i) => new Date(i.notBefore ?? now).getTime()));
  const end = Math.max(...items.map((i) => new Date(i.notAfter).getTime()));
  const span = Math.max(1, end - start);
  const pct = (t: number) => `${(((t - start) / span) * 100).toFixed(2)}%`;
  return (
    <ul class="timeline" aria-label="Validity of CA generations and active leaves">
      {items.map((item) => {
        const from = new Date(item.notBefore ?? now).getTime();
        const to = new Date(item.notAfter).getTime();
        return (
          <li key={item.label} class={item.ok ? '' : 'is-bad'}>
            <span class="label">
              {item.kind === 'ca' ? 'CA ' : 'key '}
              {item.label}
            </span>
            {/* Position set through the CSSOM (style object), which the CSP allows; no style attribute strings. */}
            <span class="track" aria-hidden="true">
              <span class="bar" style={{ left: pct(from), width: `calc(${pct(to)} - ${pct(from)})` }} />
              <span class="now" style={{ left: pct(now.getTime()) }} />
            </span>
            <span class="detail">
              expires <Time iso={item.notAfter} /> ({item.days} d) <Verdict ok={item.ok} badText="expiring" />
              <span class="rule">{item.rule}</span>
            </span>
          </li>
        );
      })}
    </ul>
  );
}

export function OverviewView(_: ViewProps) {
  const [load, reload] = useLoad(loadOverview, []);
  return (
    <Loaded load={load} what="the overview" retry={reload}>
      {(data) => {
        const expiry = expiryItems(data.cas, data.keys, data.now);
        const calendar = rotationCalendar(data.keys, data.now);
        const distribution = distributionVerdict(data.distribution);
        const checkpoint = checkpointVerdict(data.checkpoint, data.rowsAfterCheckpoint, data.now);
        const running = data.rotations.filter((r) => r.state === 'running' || r.state === 'activated');
        return (
          <div class="overview">
            <p class="muted">
              As of <Time iso={data.now.toISOString()} />.{' '}
              <button type="button" onClick={reload}>
                Refresh
              </button>
            </p>
            <section aria-labelledby="ov-expiry">
              <h2 id="ov-expiry">Expiry: CA generations and leaf certificates</h2>
              <Timeline items={expiry} now={data.now} />
            </section>
            <section aria-labelledby="ov-calendar">
              <h2 id="ov-calendar">Rotation calendar</h2>
              {calendar.length === 0 ? (
                <Empty>No signing keys yet.</Empty>
              ) : (
                <TableScroll label="Rotation calendar">
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">Key</th>
                        <th scope="col">Schedule</th>
                        <th scope="col">Next rotation</th>
                        <th scope="col">Status</th>
                        <th scope="col">Rule</th>
                      </tr>
                    </thead>
                    <tbody>
                      {calendar.map((c) => (
                        <tr key={c.key}>
                          <th scope="row">{c.key}</th>
                          <td>{c.schedule}</td>
                          <td>{c.next ? <Time iso={c.next.toISOString()} /> : <span class="muted">per cron (the server schedules it)</span>}</td>
                          <td>
                            <Verdict ok={c.ok} okText="on schedule" badText={c.hasActive ? 'overdue' : 'no active version'} />
                            {c.overdueSince && (
                              <>
                                {' '}
                                due <Time iso={c.overdueSince.toISOString()} />
                              </>
                            )}
                          </td>
                          <td class="rule">{c.rule}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </TableScroll>
              )}
              <p>
                {running.length === 0 ? 'No rotation in progress.' : `${running.length} rotation(s) in progress: `}
                {running.length > 0 && <a href="#/rotations">see Rotations</a>}
                {data.rotations.filter((r) => r.alert && (r.state === 'running' || r.state === 'activated')).map((r) => (
                  <span key={r.id} class="badge bad">
                    alert: {r.alert}
                  </span>
                ))}
              </p>
            </section>
            <section aria-labelledby="ov-crl">
              <h2 id="ov-crl">CRL freshness</h2>
              {data.crls.length === 0 ? (
                <Empty>No CA generation publishes a CRL yet.</Empty>
              ) : (
                <ul class="cards">
                  {data.crls.map((c) => (
                    <li key={c.generation} class={c.ok ? '' : 'is-bad'}>
                      <strong>{c.generation}</strong> <Verdict ok={c.ok} okText="fresh" badText="stale" />
                      <br />
                      this update <Time iso={c.thisUpdate?.toISOString()} />, next update <Time iso={c.nextUpdate?.toISOString()} />
                      {c.error && <span class="error"> {c.error}</span>}
                      <span class="rule">{c.rule}</span>
                    </li>
                  ))}
                </ul>
              )}
            </section>
            <section aria-labelledby="ov-dist">
              <h2 id="ov-dist">Distribution health</h2>
              <p data-testid="distribution-health">
                <Verdict ok={distribution.ok} okText="converged" badText="behind" /> {distribution.converged} of {distribution.targets} target(s) hold their truststore's current version.{' '}
                <a href="#/fleet">Fleet</a>
                <span class="rule">{distribution.rule}</span>
              </p>
            </section>
            <section aria-labelledby="ov-audit">
              <h2 id="ov-audit">Audit checkpoint</h2>
              <p>
                <Verdict ok={checkpoint.ok} okText="recent" badText="stale" />{' '}
                {data.checkpoint ? (
                  <>
                    newest checkpoint at seq {data.checkpoint.seq}, <Time iso={data.checkpoint.time} /> ({duration(checkpoint.ageSeconds ?? 0)} ago)
                  </>
                ) : (
                  'no checkpoint yet'
                )}
                {data.rowsAfterCheckpoint ? '; newer rows are not checkpointed yet' : '; every row is checkpointed'}
                <span class="rule">{checkpoint.rule}</span>
              </p>
            </section>
          </div>
        );
      }}
    </Loaded>
  );
}
