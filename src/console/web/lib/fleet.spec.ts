import { applyTargetEvent, filterAndSort, fleetRows, type FleetFilter } from './fleet';
import type { DistributionStatus, TargetState, TargetStatus } from './types';

function target(name: string, state: TargetState, extra: Partial<TargetStatus> = {}): TargetStatus {
  return {
    name,
    kind: 'oci-registry',
    endpoint: `http://${name}.example:5000`,
    truststore: 'prod',
    required: false,
    desired: { version: 2, digest: 'sha256:b', since: '2026-05-10T00:00:00Z' },
    delivered:
      state === 'converged' ? { version: 2, digest: 'sha256:b', at: '2026-05-10T00:00:05Z', verifiedAt: null } : null,
    state,
    attempts: 1,
    lastAttemptAt: null,
    nextAttemptAt: null,
    lastError: null,
    convergedAt: null,
    convergeSeconds: state === 'converged' ? 5 : null,
    lagSeconds: state === 'converged' ? 0 : 60,
    lagVersions: state === 'converged' ? 0 : 1,
    ...extra,
  };
}

const status: DistributionStatus = {
  generatedAt: '2026-05-10T00:01:00Z',
  summary: { targets: 4, converged: 2, pending: 0, pushing: 0, retrying: 1, blocked: 1 },
  truststores: [],
  regions: [
    {
      name: 'eu',
      offline: false,
      targets: [
        target('eu-a', 'converged'),
        target('eu-b', 'retrying', { attempts: 7, lastError: { kind: 'network', message: 'connect ECONNREFUSED' } }),
      ],
    },
    {
      name: 'us',
      offline: false,
      targets: [target('us-a', 'blocked', { attempts: 3 }), target('us-b', 'converged', { convergeSeconds: 2 })],
    },
    { name: 'empty', offline: true, targets: [] },
  ],
};
const all: FleetFilter = { text: '', state: 'all', region: '' };

describe('fleet grid rows', () => {
  it('has one row per region × target, named region/target', () => {
    expect(fleetRows(status).map((r) => r.id)).toEqual(['eu/eu-a', 'eu/eu-b', 'us/us-a', 'us/us-b']);
  });

  it('sorts by state worst first, and flips with descending', () => {
    const rows = fleetRows(status);
    expect(filterAndSort(rows, all, 'state').map((r) => r.state)).toEqual([
      'blocked',
      'retrying',
      'converged',
      'converged',
    ]);
    expect(filterAndSort(rows, all, 'attempts', true)[0].id).toBe('eu/eu-b');
    expect(filterAndSort(rows, all, 'converge').map((r) => r.id)).toEqual(['us/us-b', 'eu/eu-a', 'eu/eu-b', 'us/us-a']);
  });

  it('filters by unhealthy state, region, and text in the id, endpoint or last error', () => {
    const rows = fleetRows(status);
    expect(filterAndSort(rows, { ...all, state: 'unhealthy' }, 'region').map((r) => r.id)).toEqual([
      'eu/eu-b',
      'us/us-a',
    ]);
    expect(filterAndSort(rows, { ...all, region: 'us' }, 'name').map((r) => r.id)).toEqual(['us/us-a', 'us/us-b']);
    expect(filterAndSort(rows, { ...all, text: 'econnrefused' }, 'name').map((r) => r.id)).toEqual(['eu/eu-b']);
  });

  it('filters and sorts 1,000 targets without losing or duplicating one', () => {
    const big: DistributionStatus = {
      ...status,
      regions: Array.from({ length: 10 }, (_, r) => ({
        name: `region-${r}`,
        offline: false,
        targets: Array.from({ length: 100 }, (_, t) =>
          target(`t-${t}`, t % 10 === 0 ? 'blocked' : 'converged', { attempts: t }),
        ),
      })),
    };
    const rows = fleetRows(big);
    const sorted = filterAndSort(rows, all, 'attempts', true);
    expect(new Set(sorted.map((r) => r.id)).size).toBe(1000);
    expect(filterAndSort(rows, { ...all, state: 'blocked' }, 'region')).toHaveLength(100);
  });
});

describe('live fleet updates (server-sent `target` events)', () => {
  it('replaces one target in place and recounts the summary', () => {
    const eu = status.regions[0];
    const next = applyTargetEvent(status, {
      region: 'eu',
      target: { ...eu.targets[1], state: 'converged', lastError: null },
    });
    expect(fleetRows(next).find((r) => r.id === 'eu/eu-b')!.state).toBe('converged');
    expect(next.summary).toMatchObject({ targets: 4, converged: 3, retrying: 0, blocked: 1 });
    expect(status.regions[0].targets[1].state).toBe('retrying'); // the held status is not mutated
  });

  it('adds a new target or region, and removes a deleted one', () => {
    const added = applyTargetEvent(status, { region: 'ap', target: { ...status.regions[0].targets[0], name: 'ap-a' } });
    expect(fleetRows(added).map((r) => r.id)).toContain('ap/ap-a');
    const removed = applyTargetEvent(added, { id: 'us/us-a', deleted: true });
    expect(fleetRows(removed).map((r) => r.id)).not.toContain('us/us-a');
    expect(removed.summary.targets).toBe(4);
  });
});
