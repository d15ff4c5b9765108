import { ClockSyncProbe, ClockSyncSource, parseChronyTracking, parseTimedatectl } from './clock-sync.probe';

function source(name: string, answer: boolean | undefined, calls: string[] = []): ClockSyncSource {
  return {
    name,
    read: async () => {
      calls.push(name);
      return answer === undefined ? undefined : { synchronised: answer };
    },
  };
}

describe(ClockSyncProbe.name, () => {
  it('takes the answer of the first source that can tell', async () => {
    const calls: string[] = [];
    const probe = new ClockSyncProbe([
      source('a', undefined, calls),
      source('b', false, calls),
      source('c', true, calls),
    ]);
    expect(await probe.check()).toEqual({ synchronised: false, source: 'b' });
    expect(calls).toEqual(['a', 'b']);
  });

  it("reports 'unknown' with no source when none can be read, and survives a source that throws", async () => {
    const throwing: ClockSyncSource = { name: 'broken', read: () => Promise.reject(new Error('boom')) };
    expect(await new ClockSyncProbe([throwing, source('a', undefined)]).check()).toEqual({
      synchronised: 'unknown',
      source: null,
    });
  });

  it('caches the state for maxAgeMs and probes again after it, one probe at a time', async () => {
    let now = 0;
    const calls: string[] = [];
    let answer = true;
    const flipping: ClockSyncSource = {
      name: 'flip',
      read: async () => (calls.push('flip'), { synchronised: answer }),
    };
    const probe = new ClockSyncProbe([flipping], 1000, () => now);
    await Promise.all([probe.check(), probe.check(), probe.check()]);
    expect(calls).toHaveLength(1);
    answer = false;
    now = 500;
    expect((await probe.check()).synchronised).toBe(true);
    now = 1501;
    expect((await probe.check()).synchronised).toBe(false);
    expect(calls).toHaveLength(2);
  });

  it('current() answers from the cache at once and refreshes a stale state in the background', async () => {
    const probe = new ClockSyncProbe([source('s', false)], 1000, () => 0);
    expect(probe.current().synchronised).toBe('unknown');
    await probe.check();
    expect(probe.current().synchronised).toBe(false);
  });
});

describe('clock source parsers', () => {
  it('reads timedatectl NTPSynchronized', () => {
    expect(parseTimedatectl('yes\n')).toEqual({ synchronised: true });
    expect(parseTimedatectl('no\n')).toEqual({ synchronised: false });
    expect(parseTimedatectl('')).toBeUndefined();
    expect(parseTimedatectl(undefined)).toBeUndefined();
  });

  it('reads the leap status of chronyc tracking', () => {
    const synced = 'Reference ID    : A9FEA97B (169.254.169.123)\nStratum         : 4\nLeap status     : Normal\n';
    const unsynced = 'Reference ID    : 00000000 ()\nStratum         : 0\nLeap status     : Not synchronised\n';
    expect(parseChronyTracking(synced)).toEqual({ synchronised: true, detail: 'leap status Normal' });
    expect(parseChronyTracking(unsynced)).toEqual({ synchronised: false, detail: 'leap status Not synchronised' });
    expect(parseChronyTracking('506 Cannot talk to daemon')).toBeUndefined();
  });
});
