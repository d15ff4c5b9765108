import { progressSteps, type RevocationProgress } from './revocation-progress';

const stage = (done: boolean, seconds: number | null = null) => ({
  done,
  at: done ? '2026-12-07T04:00:01Z' : null,
  seconds,
});

describe('revocation progress steps', () => {
  it('lists signing, OCSP, CRL and then one step per region, in that order, with their times', () => {
    const progress: RevocationProgress = {
      serial: '0a',
      revokedAt: '2026-12-07T04:00:00Z',
      signingStopped: stage(true, 0),
      ocsp: { ...stage(true, 0.2), status: 'revoked' },
      crl: { ...stage(true, 0.9), generation: 'signet-dev-issuing-g1', crlNumber: '7' },
      regions: [
        { name: 'eu', targets: 2, delivered: 2, ...stage(true, 4.5) },
        { name: 'us', targets: 3, delivered: 1, ...stage(false) },
      ],
      everywhere: stage(false),
    };
    const steps = progressSteps(progress);
    expect(steps.map((s) => [s.id, s.done, s.seconds])).toEqual([
      ['signing', true, 0],
      ['ocsp', true, 0.2],
      ['crl', true, 0.9],
      ['region-eu', true, 4.5],
      ['region-us', false, null],
    ]);
    expect(steps[2].note).toBe('signet-dev-issuing-g1.crl, CRL number 7');
    expect(steps[4].note).toBe('1 of 3 target(s)');
  });

  it('says what OCSP answers while it does not yet say revoked', () => {
    const steps = progressSteps({
      serial: '0a',
      revokedAt: null,
      signingStopped: stage(false),
      ocsp: { ...stage(false), status: 'good' },
      crl: stage(false),
      regions: [],
    });
    expect(steps.find((s) => s.id === 'ocsp')!.note).toBe('answers good now');
  });
});
