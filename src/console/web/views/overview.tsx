/**
 * Overview: GET /v1/status, which is `signet status` as JSON: expiry of CA generations and active
 * leaves on a timeline, the rotation calendar, overdue rotations and alerts, CRL freshness,
 * distribution health, audit checkpoint age. Each item carries the server's verdict and the rule
 * behind it (the server knows the configured thresholds; the page does not guess them).
 */
import type { ComponentChildren } from 'preact';
import { get } from '../api';
import { Empty, Loaded, TableScroll, Time, useLoad, Verdict, type ViewProps } from '../components';
import { duration } from '../lib/time';
import type { Flag, SecurityStatus } from '../lib/types';

function Rule({ flag }: { flag: Flag }) {
  return <span class="rule">{flag.rule}</span>;
}

interface TimelineItem extends Flag {
  label: string;
  notAfter: string;
  days: number;
}

/** Remaining lifetime from now, on one axis for all items: the shortest bars expire first. */
function Timeline({ items, now }: { items: TimelineItem[]; now: number }) {
  if (items.length === 0) return <Empty>No CA generation or active leaf certificate yet.</Empty>;
  const end = Math.max(...items.map((i) => new Date(i.notAfter).getTime()));
  const span = Math.max(1, end - now);
  return (
    <ul class="timeline" aria-label="Remaining validity of CA generations and active leaves">
      {items.map((item) => (
        <li key={item.label} class={item.red ? 'is-bad' : ''}>
          <span class="label">{item.label}</span>
          {/* Width set through the CSSOM (a style object), which the CSP allows; no style attribute strings. */}
          <span class="track" aria-hidden="true">
            <span
              class="bar"
              style={{
                left: '0%',
                width: `${Math.max(0.5, ((new Date(item.notAfter).getTime() - now) / span) * 100).toFixed(2)}%`,
              }}
            />
          </span>
          <span class="detail">
            expires <Time iso={item.notAfter} /> ({item.days} d) <Verdict ok={!item.red} badText="expiring" />
            <Rule flag={item} />
          </span>
        </li>
      ))}
    </ul>
  );
}

function Section({ id, title, children }: { id: string; title: string; children: ComponentChildren }) {
  return (
    <section aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      {children}
    </section>
  );
}

export function OverviewView(_: ViewProps) {
  const [load, reload] = useLoad(() => get<SecurityStatus>('/v1/status'), []);
  return (
    <Loaded load={load} what="the overview" retry={reload}>
      {(status) => {
        const now = new Date(status.generatedAt).getTime();
        const expiry: TimelineItem[] = [
          ...status.caGenerations.map((g) => ({ ...g, label: `CA ${g.generation} (${g.kind}, ${g.state})` })),
          ...status.leaves.map((l) => ({ ...l, label: `key ${l.key} v${l.version}` })),
        ];
        const problems = [
          ...status.rotationAlerts.map((a) => ({ ...a, text: a.alert })),
          ...status.caRenewalBlocked.map((b) => ({
            ...b,
            text: `${b.ca} (${b.kind}, ${b.generation}) cannot be renewed: ${b.reason}`,
          })),
          ...status.keysWithoutActiveVersion.map((k) => ({ ...k, text: `key ${k.key} has no active version` })),
        ];
        const d = status.distribution;
        const cp = status.auditCheckpoint;
        return (
          <div class="overview">
            <p>
              <Verdict ok={!status.red} okText="all green" badText="needs attention" /> as of{' '}
              <Time iso={status.generatedAt} />.{' '}
              <button type="button" onClick={reload}>
                Refresh
              </button>
            </p>
            <Section id="ov-expiry" title="Expiry: CA generations and leaf certificates">
              <Timeline items={expiry} now={now} />
            </Section>
            <Section id="ov-calendar" title="Rotation calendar">
              {status.rotations.length === 0 ? (
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
                      {status.rotations.map((r) => (
                        <tr key={r.key}>
                          <th scope="row">{r.key}</th>
                          <td>{r.schedule}</td>
                          <td>
                            <Time iso={r.nextDueAt} />
                          </td>
                          <td>
                            <Verdict ok={!r.red} okText="on schedule" badText="overdue" />
                            {r.overdueSince && (
                              <>
                                {' '}
                                due <Time iso={r.overdueSince} /> ({r.hoursLate} h late)
                              </>
                            )}
                          </td>
                          <td class="rule">{r.rule}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </TableScroll>
              )}
              {problems.length === 0 ? (
                <p>
                  No rotation alert. <a href="#/rotations">Rotations in progress</a>
                </p>
              ) : (
                <ul class="cards">
                  {problems.map((p, i) => (
                    <li key={i} class="is-bad">
                      <Verdict ok={false} badText="alert" /> {p.text}
                      <Rule flag={p} />
                    </li>
                  ))}
                </ul>
              )}
            </Section>
            <Section id="ov-crl" title="CRL freshness">
              {status.crls.length === 0 ? (
                <Empty>No CA generation publishes a CRL yet.</Empty>
              ) : (
                <ul class="cards">
                  {status.crls.map((c) => (
                    <li key={c.generation} class={c.red ? 'is-bad' : ''}>
                      <strong>{c.generation}</strong> <Verdict ok={!c.red} okText="fresh" badText="stale" />
                      <br />
                      {c.nextUpdate ? (
                        <>
                          next update <Time iso={c.nextUpdate} /> (
                          {c.secondsLeft !== null && c.secondsLeft < 0
                            ? `expired ${duration(-c.secondsLeft)} ago`
                            : `in ${duration(c.secondsLeft ?? 0)}`}
                          )
                        </>
                      ) : (
                        'no CRL yet'
                      )}
                      <Rule flag={c} />
                    </li>
                  ))}
                </ul>
              )}
            </Section>
            <Section id="ov-dist" title="Distribution health">
              <p data-testid="distribution-health">
                <Verdict ok={!d.red} okText="converged" badText="behind" /> {d.converged} of {d.targets} target(s)
                converged
                {d.targets > d.converged &&
                  ` (${d.pending} pending, ${d.pushing} pushing, ${d.retrying} retrying, ${d.blocked} blocked)`}
                . <a href="#/fleet">Fleet</a>
                <Rule flag={d} />
              </p>
            </Section>
            <Section id="ov-audit" title="Audit checkpoint">
              <p>
                <Verdict ok={!cp.red} okText="recent" badText="stale" />{' '}
                {cp.lastCheckpointAt ? (
                  <>
                    newest checkpoint at seq {cp.lastCheckpointSeq}, <Time iso={cp.lastCheckpointAt} />
                  </>
                ) : (
                  'no checkpoint yet'
                )}
                ; head seq {cp.headSeq}
                {cp.oldestUncheckpointedAt
                  ? `; rows waiting for a checkpoint for ${duration(cp.uncheckpointedAgeSeconds)}`
                  : '; every row is checkpointed'}{' '}
                (interval {cp.intervalSeconds} s).
                <Rule flag={cp} />
              </p>
            </Section>
          </div>
        );
      }}
    </Loaded>
  );
}
