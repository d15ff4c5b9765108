import fc from 'fast-check';
import {
  canonicalActorJson,
  canonicalJson,
  canonicalString,
  canonicalTime,
  eventHash,
  eventHashHex,
  normaliseActor,
  normaliseJson,
} from './audit-canonical';
import { AuditActor, JsonValue } from './audit.types';
import { SignEventData, signEventDataJson } from './sign-event';

/** What AuditService.record would hash for `data`: the generic walk the fast paths must equal. */
function generic(data: unknown): string {
  return canonicalJson(normaliseJson(data) as JsonValue);
}

// Strings with what canonical JSON must escape or replace: quotes, backslashes, controls, NUL,
// lone and paired surrogates, non-ASCII.
const awkwardString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('', '"', '\\', '\u0000', '\ud800', '\udc00x', '\ud83d\ude00', '\u2028', 'é\u0001', '</script>'),
);
const number = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(-0, 1e21, Number.NaN, Infinity, 0.1 + 0.2));

const signEventData: fc.Arbitrary<SignEventData> = fc.record(
  {
    version: number,
    keySpec: awkwardString,
    algorithm: awkwardString,
    digest: awkwardString,
    mode: awkwardString,
    signatureFormat: awkwardString,
    signature: awkwardString,
    artifact: fc.option(
      fc.record({ digest: awkwardString, mediaType: awkwardString, size: number }, { requiredKeys: ['digest'] }),
      { nil: null },
    ),
    artifactSource: fc.oneof(awkwardString, fc.constantFrom('payload', 'claimed')),
    idempotencyKey: awkwardString,
  },
  { requiredKeys: ['version', 'keySpec', 'algorithm', 'digest', 'mode', 'signatureFormat', 'signature', 'artifact'] },
);

describe('sign event fast serialisation', () => {
  it('writes a realistic sign event exactly as the generic canonical walk does', () => {
    const data: SignEventData = {
      version: 3,
      keySpec: 'EC-256',
      algorithm: 'ECDSA-SHA-256',
      digest: `sha256:${'ab'.repeat(32)}`,
      mode: 'payload',
      signatureFormat: 'raw',
      signature: Buffer.alloc(64, 7).toString('base64'),
      artifact: {
        digest: `sha256:${'cd'.repeat(32)}`,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        size: 1234,
      },
      artifactSource: 'payload',
      idempotencyKey: 'build-"42"\\',
    };
    expect(signEventDataJson(data)).toBe(generic(data));
    expect(JSON.parse(signEventDataJson(data))).toEqual(data);
    const { idempotencyKey: _omitted, ...withoutKey } = data;
    expect(signEventDataJson({ ...withoutKey, artifact: null })).toBe(generic({ ...withoutKey, artifact: null }));
    expect(signEventDataJson({ ...data, idempotencyKey: undefined })).not.toContain('idempotencyKey');
    expect(signEventDataJson({ ...data, artifactSource: 'claimed' })).toBe(
      generic({ ...data, artifactSource: 'claimed' }),
    );
    expect(signEventDataJson({ ...data, artifactSource: undefined })).not.toContain('artifactSource');
  });

  it('equals the generic walk for any field values, optional members present or not', () => {
    fc.assert(
      fc.property(signEventData, (data) => signEventDataJson(data) === generic(data)),
      { numRuns: 2000 },
    );
  });

  it('writes any actor as canonicalJson(normaliseActor(actor)), absent members and non-strings left out', () => {
    const member = fc.oneof(awkwardString, fc.integer(), fc.constant(undefined));
    const actor = fc.option(
      fc.record({ tokenId: member, tokenName: member, role: member, address: member }, { requiredKeys: [] }),
      { nil: undefined },
    );
    fc.assert(
      fc.property(actor, (value) => {
        const normalised = normaliseActor(value as AuditActor | undefined);
        return (
          canonicalActorJson(value as AuditActor | undefined) ===
          (normalised === null ? 'null' : canonicalJson(normalised as JsonValue))
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('writes a workload actor as the generic walk, keeping the text of a deeply frozen workload part and never of one that can change', () => {
    const workload = fc.record({
      provider: awkwardString,
      sub: awkwardString,
      rule: awkwardString,
      jti: fc.option(awkwardString, { nil: undefined }),
      claims: fc.dictionary(awkwardString, awkwardString),
    });
    fc.assert(
      fc.property(workload, awkwardString, (part, address) => {
        const generic = (actor: AuditActor) => canonicalJson(normaliseActor(actor) as JsonValue);
        const mutable = { ...part, claims: { ...part.claims } };
        const actor: AuditActor = { tokenId: 't', role: 'signer', address, workload: mutable };
        if (canonicalActorJson(actor) !== generic(actor)) return false;
        // Changed after being written once: the next row must say what it is now.
        mutable.claims.added = 'later';
        mutable.sub = `${mutable.sub}!`;
        if (canonicalActorJson(actor) !== generic(actor)) return false;
        const frozen = Object.freeze({ ...part, claims: Object.freeze({ ...part.claims }) });
        const shared: AuditActor = { tokenId: 't', role: 'signer', address, workload: frozen };
        return (
          canonicalActorJson(shared) === generic(shared) &&
          canonicalActorJson({ ...shared, address: `${address}x` }) === generic({ ...shared, address: `${address}x` })
        );
      }),
      { numRuns: 500 },
    );
    // Frozen on the outside only: the claims can still change, so nothing is kept.
    const claims: Record<string, string> = { repository: 'acme/app' };
    const shallow = Object.freeze({ provider: 'ci', sub: 's', rule: 'r', claims });
    const actor: AuditActor = { workload: shallow };
    expect(canonicalActorJson(actor)).toContain('"acme/app"');
    claims.repository = 'acme/other';
    expect(canonicalActorJson(actor)).toContain('"acme/other"');
  });

  it('hashes a row from its canonical parts to the same digest as eventHash over the fields', () => {
    fc.assert(
      fc.property(
        signEventData,
        awkwardString,
        fc.bigInt({ min: 1n, max: 2n ** 62n }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (data, subject, seq, prev) => {
          const actor: AuditActor = { tokenId: 't-1', tokenName: subject, role: 'signer', address: '::1' };
          const time = canonicalTime(1_780_000_000_123);
          const prevHash = Buffer.from(prev);
          const expected = eventHash({
            seq: seq.toString(),
            time,
            type: 'sign',
            actor: normaliseActor(actor),
            subject: normaliseJson(subject) as string,
            data: normaliseJson(data) as { [key: string]: JsonValue },
            prevHash,
          });
          const row = {
            typeJson: '"sign"',
            actorJson: canonicalActorJson(actor),
            subjectJson: canonicalString(subject),
            dataJson: signEventDataJson(data),
          };
          return eventHashHex(seq.toString(), time, row, prevHash.toString('hex')) === expected.toString('hex');
        },
      ),
      { numRuns: 500 },
    );
  });
});
