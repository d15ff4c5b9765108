import {
  canonicalJson,
  canonicalEventText,
  canonicalTime,
  checkpointStatement,
  eventHash,
  GENESIS_HASH,
  normaliseJson,
} from './audit-canonical';

describe('audit canonical bytes', () => {
  const fields = {
    seq: '42',
    time: canonicalTime(Date.UTC(2026, 0, 2, 3, 4, 5, 678)),
    type: 'sign',
    actor: {
      tokenName: 'ci-release',
      tokenId: '6f1c0b0e-2b7a-4d0e-9d1a-0c6f3f1d2a10',
      address: '192.0.2.7',
      role: 'signer',
    },
    subject: 'release',
    data: {
      version: 3,
      key: 'release',
      digest: 'LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564=',
      artifact: 'sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae',
      algorithm: 'ECDSA-SHA-256',
      n: [1e21, 0.1 + 0.2, -1],
      'é\u0001': '\t"\u001f',
    },
    prevHash: Buffer.from('00'.repeat(31) + 'ff', 'hex'),
  };

  it('writes times as ISO-8601 UTC with milliseconds, whatever order the same and different instants come in', () => {
    const instants = [0, 1, 1, 1_780_000_000_123, 1_780_000_000_123, 1, 1_780_000_000_124];
    for (const ms of instants) expect(canonicalTime(ms)).toBe(new Date(ms).toISOString());
    expect(canonicalTime(1_780_000_000_123)).toBe('2026-05-28T20:26:40.123Z');
    expect(() => canonicalTime(Number.NaN)).toThrow(RangeError);
  });

  it('pins the canonical text and SHA-256 of an event (vector computed independently with Python hashlib)', () => {
    expect(canonicalEventText(fields)).toBe(
      '{"actor":{"address":"192.0.2.7","role":"signer","tokenId":"6f1c0b0e-2b7a-4d0e-9d1a-0c6f3f1d2a10","tokenName":"ci-release"},' +
        '"data":{"algorithm":"ECDSA-SHA-256","artifact":"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",' +
        '"digest":"LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564=","key":"release","n":[1e+21,0.30000000000000004,-1],"version":3,"é\\u0001":"\\t\\"\\u001f"},' +
        '"prevHash":"00000000000000000000000000000000000000000000000000000000000000ff","seq":"42","subject":"release","time":"2026-01-02T03:04:05.678Z","type":"sign","v":1}',
    );
    expect(eventHash(fields).toString('hex')).toBe('5d7a213927bb3eabd07db087155eeb0c38e2b811adfb797d91f057275306267f');
  });

  it('writes the fixed top level exactly as RFC 8785 would order it', () => {
    const generic = canonicalJson({ ...fields, prevHash: fields.prevHash.toString('hex'), v: 1 } as never);
    expect(canonicalEventText(fields)).toBe(generic);
    expect(canonicalEventText({ ...fields, actor: null, subject: null })).toBe(
      canonicalJson({
        ...fields,
        actor: null,
        subject: null,
        prevHash: fields.prevHash.toString('hex'),
        v: 1,
      } as never),
    );
  });

  it('pins the checkpoint statement', () => {
    const statement = checkpointStatement({
      seq: '42',
      hash: Buffer.alloc(32, 0xab),
      time: '2026-01-02T03:04:05.678Z',
    });
    expect(statement.toString('utf8')).toBe(
      '{"hash":"' + 'ab'.repeat(32) + '","log":"signet-audit","seq":"42","time":"2026-01-02T03:04:05.678Z","v":1}',
    );
  });

  it('sorts members by UTF-16 code units and serialises numbers like ECMAScript', () => {
    expect(canonicalJson({ '\u20ac': 1, '\r': 2, '\ud83d\ude00': 3, '1': 4, '\u0080': 5, ö: 6 })).toBe(
      '{"\\r":2,"1":4,"\u0080":5,"ö":6,"\u20ac":1,"\ud83d\ude00":3}',
    );
    expect(canonicalJson([Number('333333333.33333329'), 1e30, 4.5, 2e-3, 0.000001, 1e-7, -0])).toBe(
      '[333333333.3333333,1e+30,4.5,0.002,0.000001,1e-7,0]',
    );
  });

  it('normalises values that JSON or PostgreSQL cannot carry as they are', () => {
    expect(
      normaliseJson({
        a: undefined,
        b: Buffer.from([1, 2]),
        c: new Date(0),
        d: 10n,
        e: NaN,
        f: 'x\u0000y',
        g: '\udc00',
      }),
    ).toEqual({
      b: 'AQI=',
      c: '1970-01-01T00:00:00.000Z',
      d: '10',
      e: null,
      f: 'x\ufffdy',
      g: '\ufffd',
    });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => normaliseJson(cyclic)).toThrow(/deeper than 32/);
    expect(GENESIS_HASH.equals(Buffer.alloc(32))).toBe(true);
  });
});
