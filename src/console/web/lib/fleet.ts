/** The Fleet grid's rows: one per region × target, filtered and sorted without touching the DOM. */
import type { DistributionStatus, TargetState, TargetStatus } from './types';

export interface FleetRow extends TargetStatus {
  region: string;
  offline: boolean;
  /** `region/target`, unique. */
  id: string;
}

export type FleetSortKey = 'region' | 'name' | 'state' | 'attempts' | 'lag' | 'converge';

export interface FleetFilter {
  text: string;
  state: TargetState | 'all' | 'unhealthy';
  region: string;
}

export function fleetRows(status: DistributionStatus): FleetRow[] {
  const rows: FleetRow[] = [];
  for (const region of status.regions)
    for (const target of region.targets)
      rows.push({ ...target, region: region.name, offline: region.offline, id: `${region.name}/${target.name}` });
  return rows;
}

/** Worst first when sorting by state: what needs a look comes to the top. */
const STATE_RANK: Record<TargetState, number> = { blocked: 0, retrying: 1, pending: 2, pushing: 3, converged: 4 };

export function isHealthy(state: TargetState): boolean {
  return state === 'converged';
}

export function filterAndSort(
  rows: FleetRow[],
  filter: FleetFilter,
  sort: FleetSortKey,
  descending = false,
): FleetRow[] {
  const text = filter.text.trim().toLowerCase();
  const kept = rows.filter(
    (row) =>
      (filter.region === '' || row.region === filter.region) &&
      (filter.state === 'all' || (filter.state === 'unhealthy' ? !isHealthy(row.state) : row.state === filter.state)) &&
      (text === '' ||
        row.id.toLowerCase().includes(text) ||
        row.endpoint.toLowerCase().includes(text) ||
        (row.lastError?.message.toLowerCase().includes(text) ?? false)),
  );
  const value = (row: FleetRow): string | number => {
    switch (sort) {
      case 'region':
        return row.region;
      case 'name':
        return row.name;
      case 'state':
        return STATE_RANK[row.state];
      case 'attempts':
        return row.attempts;
      case 'lag':
        return row.lagSeconds;
      case 'converge':
        return row.convergeSeconds ?? Number.POSITIVE_INFINITY;
    }
  };
  const direction = descending ? -1 : 1;
  return kept.sort((a, b) => {
    const x = value(a);
    const y = value(b);
    const order = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
    return order !== 0 ? order * direction : a.id.localeCompare(b.id);
  });
}

/** A `target` server-sent event: one target's new status, or a target gone. */
export type TargetEvent = { region: string; target: TargetStatus } | { id: string; deleted: true };

/** Applies a `target` event to the status the page holds (a new object; the summary recounted). */
export function applyTargetEvent(status: DistributionStatus, event: TargetEvent): DistributionStatus {
  let regions = status.regions;
  if ('deleted' in event) {
    regions = regions.map((r) => ({ ...r, targets: r.targets.filter((t) => `${r.name}/${t.name}` !== event.id) }));
  } else {
    const known = regions.some((r) => r.name === event.region);
    regions = known
      ? regions.map((r) => {
          if (r.name !== event.region) return r;
          const at = r.targets.findIndex((t) => t.name === event.target.name);
          const targets =
            at < 0
              ? [...r.targets, event.target].sort((a, b) => a.name.localeCompare(b.name))
              : r.targets.map((t, i) => (i === at ? event.target : t));
          return { ...r, targets };
        })
      : [...regions, { name: event.region, offline: false, targets: [event.target] }];
  }
  const summary = { targets: 0, converged: 0, pending: 0, pushing: 0, retrying: 0, blocked: 0 };
  for (const region of regions)
    for (const target of region.targets) {
      summary.targets++;
      summary[target.state]++;
    }
  return { ...status, regions, summary };
}
