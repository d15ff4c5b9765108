import * as crypto from 'node:crypto';
import * as fc from 'fast-check';
import { octetString, oid, sequence, smallInteger, tlv } from './der-writer';
import { OpenSslWorkspace, buildQuery, nonceFromText } from '../../test/tsa/tsa-fixtures';
import { PkiFailureInfo, TimestampRejection } from './timestamp-rejection';
import { MAX_NONCE_BYTES, parseTimestampRequest } from './timestamp-request.parser';

const MAX = 4096;

function rejection(query: Buffer | undefined, maxBytes = MAX): { failInfo: PkiFailureInfo; message: string } {
  try {
    parseTimestampRequest(query, maxBytes);
  } catch (error) {
    if (error instanceof TimestampRejection) return { failInfo: error.failInfo, message: error.message };
    throw error;
  }
  throw new Error('the query was accepted');
}

describe(parseTimestampRequest.name, () => {
  let workspace: OpenSslWorkspace;

  beforeAll(() => {
    workspace = new OpenSslWorkspace();
    workspace.write('data.bin', 'artifact bytes');
  });
  afterAll(() => workspace.remove());

  it.each([
    ['-sha256', 'sha256', 'SHA-256'],
    ['-sha384', 'sha384', 'SHA-384'],
    ['-sha512', 'sha512', 'SHA-512'],
  ] as const)('reads an OpenSSL %s query with -cert and a nonce', async (flag, node, hash) => {
    await workspace.openssl(['ts', '-query', '-data', 'data.bin', flag, '-cert', '-out', `q-${node}.tsq`]);
    const text = await workspace.openssl(['ts', '-query', '-in', `q-${node}.tsq`, '-text']);
    const request = parseTimestampRequest(workspace.read(`q-${node}.tsq`), MAX);
    expect(request.hashAlgorithm).toBe(hash);
    expect(request.hashedMessage).toEqual(crypto.createHash(node).update('artifact bytes').digest());
    expect(request.certReq).toBe(true);
    expect(request.nonce).toBe(nonceFromText(text));
    expect(request.reqPolicy).toBeUndefined();
  });

  it('reads a query without certReq and without a nonce', async () => {
    await workspace.openssl(['ts', '-query', '-data', 'data.bin', '-sha256', '-no_nonce', '-out', 'plain.tsq']);
    const request = parseTimestampRequest(workspace.read('plain.tsq'), MAX);
    expect(request).toMatchObject({ hashAlgorithm: 'SHA-256', certReq: false });
    expect(request.nonce).toBeUndefined();
    expect(request.nonceDer).toBeUndefined();
  });

  it('reads a requested policy, NULL hash parameters and a negative nonce exactly as sent', () => {
    const query = buildQuery({ policy: '1.3.6.1.4.1.32473.1', nullParameters: true, nonce: 5n });
    const request = parseTimestampRequest(query, MAX);
    expect(request.reqPolicy).toBe('1.3.6.1.4.1.32473.1');
    expect(request.messageImprintDer.includes(Buffer.from([0x05, 0x00]))).toBe(true);
    const negative = sequence(
      smallInteger(1),
      sequence(sequence(oid('2.16.840.1.101.3.4.2.1')), octetString(Buffer.alloc(32))),
      tlv(0x02, Buffer.from([0xff, 0x00])),
    );
    const parsed = parseTimestampRequest(negative, MAX);
    expect(parsed.nonce).toBe(-256n);
    expect(parsed.nonceDer).toEqual(Buffer.from([0x02, 0x02, 0xff, 0x00]));
  });

  it.each([
    ['SHA-1', buildQuery({ hashOid: 'sha1', hashedMessage: Buffer.alloc(20) })],
    ['MD5', buildQuery({ hashOid: 'md5', hashedMessage: Buffer.alloc(16) })],
    ['an unknown OID', buildQuery({ hashOid: '1.2.3.4.5' })],
    [
      'SHA-256 with parameters',
      sequence(
        smallInteger(1),
        sequence(sequence(oid('2.16.840.1.101.3.4.2.1'), smallInteger(7)), octetString(Buffer.alloc(32))),
      ),
    ],
  ])('refuses %s as the imprint algorithm with badAlg', (_name, query) => {
    expect(rejection(query).failInfo).toBe('badAlg');
  });

  it('refuses an OpenSSL -sha1 query with badAlg', async () => {
    await workspace.openssl(['ts', '-query', '-data', 'data.bin', '-sha1', '-out', 'sha1.tsq']);
    expect(rejection(workspace.read('sha1.tsq'))).toMatchObject({
      failInfo: 'badAlg',
      message: expect.stringContaining('1.3.14.3.2.26'),
    });
  });

  it.each([
    ['an empty body', Buffer.alloc(0)],
    ['a missing body', undefined],
    ['random bytes', Buffer.from('d1e2a3c4b5f60718293a4b5c6d7e8f90', 'hex')],
    ['a wrong imprint length', buildQuery({ hashedMessage: Buffer.alloc(31) })],
    ['version 2', buildQuery({ version: 2 })],
    ['trailing data', buildQuery({ trailing: Buffer.from([0x05, 0x00]) })],
    ['a nonce over the limit', buildQuery({ nonce: 1n << BigInt(MAX_NONCE_BYTES * 8 + 1) })],
    [
      'fields out of order',
      sequence(
        smallInteger(1),
        sequence(sequence(oid('2.16.840.1.101.3.4.2.1')), octetString(Buffer.alloc(32))),
        Buffer.from([0x01, 0x01, 0xff]),
        smallInteger(5),
      ),
    ],
    ['an indefinite length', Buffer.from('3080020101', 'hex')],
    ['a truncated query', buildQuery().subarray(0, 20)],
  ])('refuses %s with badDataFormat', (_name, query) => {
    expect(rejection(query).failInfo).toBe('badDataFormat');
  });

  it('refuses a query with extensions with unacceptedExtension', () => {
    const extension = sequence(sequence(oid('1.2.3.4'), octetString(Buffer.from([0x05, 0x00]))));
    expect(rejection(buildQuery({ extensions: extension.subarray(2) })).failInfo).toBe('unacceptedExtension');
  });

  it('refuses a query over the size limit without parsing it', () => {
    const query = buildQuery({ nonce: 1n });
    expect(rejection(Buffer.concat([query, Buffer.alloc(300)]), 256)).toMatchObject({
      failInfo: 'badDataFormat',
      message: expect.stringContaining('256 bytes'),
    });
  });

  it('answers any byte string with a request or a TimestampRejection, never another error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          parseTimestampRequest(Buffer.from(bytes), MAX);
        } catch (error) {
          return error instanceof TimestampRejection;
        }
        return true;
      }),
      { numRuns: 2000 },
    );
    // Mutations of a valid query reach deeper into the parser.
    const valid = buildQuery({ policy: '1.2.3', nonce: 99n, certReq: true });
    fc.assert(
      fc.property(fc.nat(valid.length - 1), fc.nat(255), (index, value) => {
        const mutated = Buffer.from(valid);
        mutated[index] = value;
        try {
          parseTimestampRequest(mutated, MAX);
        } catch (error) {
          return error instanceof TimestampRejection;
        }
        return true;
      }),
      { numRuns: 2000 },
    );
  });
});
