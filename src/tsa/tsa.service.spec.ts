import * as pkijs from 'pkijs';
import { loadConfig } from '../config/config';
import { buildQuery } from '../../test/tsa/tsa-fixtures';
import { ClockSyncProbe, ClockSyncSource } from './clock-sync.probe';
import { TimestampIssuedEvent, TsaEventSink } from './tsa-event-sink';
import { TsaSerialAllocator } from './tsa-serial.allocator';
import { TsaService } from './tsa.service';

/**
 * The rejection paths of TsaService, with doubles for everything behind them: a refused query must
 * reach neither the serial sequence, the HSM nor the audit sink. (The granted path runs against
 * PostgreSQL and SoftHSM2 in test/tsa.)
 */
describe(TsaService.name, () => {
  const config = loadConfig({ SIGNET_TSA_POLICY_OID: '1.3.6.1.4.1.32473.3161.7' });
  const events: TimestampIssuedEvent[] = [];
  const sink: TsaEventSink = { timestampIssued: async (event) => void events.push(event) };
  const serials = { next: jest.fn() } as unknown as TsaSerialAllocator;
  const untouchable = new Proxy(
    {},
    {
      get: () => {
        throw new Error('must not be used for a rejection');
      },
    },
  );

  function service(synchronised: boolean | undefined): TsaService {
    const clock: ClockSyncSource = {
      name: 'test',
      read: async () => (synchronised === undefined ? undefined : { synchronised }),
    };
    const probe = new ClockSyncProbe([clock]);
    return new TsaService(
      untouchable as never,
      untouchable as never,
      config,
      serials,
      probe,
      sink,
      untouchable as never,
    );
  }

  async function failInfoOf(svc: TsaService, query: Buffer): Promise<string> {
    const reply = await svc.respond(query);
    expect(reply.granted).toBe(false);
    const status = pkijs.TimeStampResp.fromBER(reply.der).status;
    expect(status.status).toBe(2);
    return reply.granted ? 'granted' : reply.failInfo;
  }

  afterEach(() => {
    expect(serials.next).not.toHaveBeenCalled();
    expect(events).toEqual([]);
  });

  it('rejects a policy it does not issue under with unacceptedPolicy', async () => {
    expect(await failInfoOf(service(true), buildQuery({ policy: '1.3.6.1.4.1.32473.3161.8' }))).toBe(
      'unacceptedPolicy',
    );
  });

  it('rejects with timeNotAvailable once the host reports its clock unsynchronised', async () => {
    const svc = service(false);
    await (svc as unknown as { clockSync: ClockSyncProbe }).clockSync.check();
    expect(await failInfoOf(svc, buildQuery())).toBe('timeNotAvailable');
  });

  it('rejects malformed queries before any dependency is touched', async () => {
    expect(await failInfoOf(service(undefined), Buffer.from('not a query'))).toBe('badDataFormat');
    expect(await failInfoOf(service(undefined), buildQuery({ hashOid: 'sha1', hashedMessage: Buffer.alloc(20) }))).toBe(
      'badAlg',
    );
    expect(await failInfoOf(service(undefined), Buffer.alloc(config.tsa.maxQueryBytes + 1, 0x30))).toBe(
      'badDataFormat',
    );
  });
});
