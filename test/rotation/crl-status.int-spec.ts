import { CrlService } from '../../src/revocation/crl.service';
import { RotationStatusService } from '../../src/rotation/rotation-status.service';
import { DEV_TSA_CA } from '../../src/tsa/dev-tsa.bootstrap';
import { startTestApp, TestApp } from '../support/test-app';

/**
 * CRL health in `signet status` and `signet_crls_near_next_update`: only CAs that publish CRLs
 * count. TSA CAs publish none, so before this was fixed a TSA generation showed as "no CRL yet"
 * forever and kept the gauge (and the SignetCrlRebuildLate alert) above 0 on every installation.
 */
describe('CRL status: generations that publish CRLs', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ SIGNET_LOG_LEVEL: 'fatal', SIGNET_METRICS_PUBLIC: 'true' });
    // The scheduled refresh (every 60 s) builds the CRLs; run it now.
    await t.app.get(CrlService).refreshDue();
  });
  afterAll(async () => t?.close());

  it('leaves the TSA CA out, and no CRL is late once they are built', async () => {
    const report = await t.app.get(RotationStatusService).report();
    expect(report.crls.length).toBeGreaterThan(0);
    expect(report.crls.map((c) => c.generation).filter((g) => g.startsWith(`${DEV_TSA_CA}-g`))).toEqual([]);
    expect(report.crls.filter((c) => c.late)).toEqual([]);
    const metrics = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^signet_crls_near_next_update\{service="signet"\} 0$/m);
  });
});
