import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';

export type ClockSynchronised = boolean | 'unknown';

export interface ClockSyncState {
  synchronised: ClockSynchronised;
  /** Which source answered; null when none could be read. */
  source: string | null;
  detail?: string;
}

/** One way of asking the host whether its clock is NTP-synchronised; undefined = cannot tell. */
export interface ClockSyncSource {
  name: string;
  read(): Promise<{ synchronised: boolean; detail?: string } | undefined>;
}

const COMMAND_TIMEOUT_MS = 2000;

function run(command: string, args: string[]): Promise<{ code: number; stdout: string } | undefined> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { timeout: COMMAND_TIMEOUT_MS, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } },
      (error, stdout) => {
        if (error && typeof error.code !== 'number') return resolve(undefined); // not installed, timed out, killed
        resolve({ code: error ? (error.code as number) : 0, stdout: String(stdout) });
      },
    );
  });
}

/** systemd's view, which is the kernel's adjtimex() status: valid whatever NTP daemon runs. */
export const timedatectlSource: ClockSyncSource = {
  name: 'timedatectl',
  async read() {
    const result = await run('timedatectl', ['show', '-p', 'NTPSynchronized', '--value']);
    return parseTimedatectl(result?.code === 0 ? result.stdout : undefined);
  },
};

export function parseTimedatectl(stdout: string | undefined): { synchronised: boolean } | undefined {
  const value = stdout?.trim();
  if (value === 'yes') return { synchronised: true };
  if (value === 'no') return { synchronised: false };
  return undefined;
}

/** chrony: `Leap status : Not synchronised` when it has no usable source. */
export const chronySource: ClockSyncSource = {
  name: 'chronyc',
  async read() {
    const result = await run('chronyc', ['-n', 'tracking']);
    return parseChronyTracking(result?.code === 0 ? result.stdout : undefined);
  },
};

export function parseChronyTracking(
  stdout: string | undefined,
): { synchronised: boolean; detail?: string } | undefined {
  const leap = stdout && /^Leap status\s*:\s*(.+)$/m.exec(stdout)?.[1]?.trim();
  if (!leap) return undefined;
  return { synchronised: leap !== 'Not synchronised', detail: `leap status ${leap}` };
}

/** ntpd: ntpstat exits 0 when synchronised, 1 when not, 2 when it cannot tell. */
export const ntpstatSource: ClockSyncSource = {
  name: 'ntpstat',
  async read() {
    const result = await run('ntpstat', []);
    if (result?.code === 0) return { synchronised: true };
    if (result?.code === 1) return { synchronised: false };
    return undefined;
  },
};

/** systemd-timesyncd touches this file once synchronised; its absence proves nothing. */
export const timesyncdFileSource: ClockSyncSource = {
  name: '/run/systemd/timesync/synchronized',
  async read() {
    try {
      await access('/run/systemd/timesync/synchronized');
      return { synchronised: true };
    } catch {
      return undefined;
    }
  },
};

export const DEFAULT_CLOCK_SOURCES: readonly ClockSyncSource[] = [
  timedatectlSource,
  chronySource,
  ntpstatSource,
  timesyncdFileSource,
];

/**
 * Asks the host whether its clock is synchronised, through the first source that can tell.
 * Results are cached (`maxAgeMs`) and refreshed by one probe at a time, so /readyz polling and the
 * TSA hot path never spawn processes per request.
 */
export class ClockSyncProbe {
  private state: ClockSyncState = { synchronised: 'unknown', source: null };
  private checkedAt = -Infinity;
  private running?: Promise<ClockSyncState>;

  constructor(
    private readonly sources: readonly ClockSyncSource[] = DEFAULT_CLOCK_SOURCES,
    private readonly maxAgeMs = 15_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The last known state without waiting; starts a refresh when it is stale. */
  current(): ClockSyncState {
    if (this.now() - this.checkedAt > this.maxAgeMs) void this.check();
    return this.state;
  }

  /** A fresh state (or the cached one while it is younger than maxAgeMs). */
  check(): Promise<ClockSyncState> {
    if (this.now() - this.checkedAt <= this.maxAgeMs) return Promise.resolve(this.state);
    this.running ??= this.probe().finally(() => (this.running = undefined));
    return this.running;
  }

  private async probe(): Promise<ClockSyncState> {
    let state: ClockSyncState = { synchronised: 'unknown', source: null };
    for (const source of this.sources) {
      const answer = await source.read().catch(() => undefined);
      if (answer) {
        state = {
          synchronised: answer.synchronised,
          source: source.name,
          ...(answer.detail ? { detail: answer.detail } : {}),
        };
        break;
      }
    }
    this.state = state;
    this.checkedAt = this.now();
    return state;
  }
}
