import { DomainError } from '../../common/errors';
import {
  buildManifest,
  EMPTY_CONFIG,
  parseManifest,
  sha256Digest,
  truststoreIdentity,
  validateBundle,
} from './oci-artifact';
import { TruststoreBundle } from './trust-target';

describe('oci-artifact', () => {
  const bundle: TruststoreBundle = {
    version: 7,
    digest: `sha256:${'a'.repeat(64)}`,
    layers: [
      { mediaType: 'application/x-pem-file', title: 'truststore.pem', content: Buffer.from('pem') },
      { mediaType: 'application/yaml', title: 'ratify.yaml', content: Buffer.from('pem') }, // same bytes: one blob
    ],
    annotations: { 'org.opencontainers.image.source': 'https://signet.example.com' },
  };

  it('the empty config descriptor is the digest of `{}`', () => {
    expect(sha256Digest(EMPTY_CONFIG.content)).toBe(EMPTY_CONFIG.digest);
  });

  it('same bundle and creation time give the same bytes; blobs are deduplicated', () => {
    const a = buildManifest(bundle, '2026-01-01T00:00:00Z');
    const b = buildManifest(bundle, '2026-01-01T00:00:00Z');
    expect(a.bytes.equals(b.bytes)).toBe(true);
    expect(a.digest).toBe(sha256Digest(a.bytes));
    expect(a.blobs.map((blob) => blob.digest)).toEqual([EMPTY_CONFIG.digest, sha256Digest(Buffer.from('pem'))]);
    expect(buildManifest(bundle, '2026-01-02T00:00:00Z').digest).not.toBe(a.digest);
  });

  it('round-trips identity through parseManifest', () => {
    const parsed = parseManifest(buildManifest(bundle, '2026-01-01T00:00:00Z').bytes)!;
    expect(truststoreIdentity(parsed)).toEqual({ digest: bundle.digest, version: 7 });
    expect(parsed.annotations['org.opencontainers.image.source']).toBe('https://signet.example.com');
  });

  it('parseManifest yields undefined for anything that is not a schema-2 manifest', () => {
    for (const text of [
      '',
      'null',
      '[]',
      '{"schemaVersion":1}',
      '{"schemaVersion":2,"annotations":"x"}'.slice(0, 10),
    ]) {
      expect(parseManifest(Buffer.from(text))).toBeUndefined();
    }
  });

  it.each<[string, Partial<TruststoreBundle>]>([
    ['version', { version: 0 }],
    ['digest', { digest: 'sha256:ABC' }],
    ['layers', { layers: [] }],
    ['layers[0].title', { layers: [{ mediaType: 'text/plain', title: '../etc/passwd', content: Buffer.from('') }] }],
    ['layers[1].title', { layers: [bundle.layers[0], bundle.layers[0]] }],
    ['layers[0].mediaType', { layers: [{ mediaType: 'nonsense', title: 'a', content: Buffer.from('') }] }],
    ['annotations.io.signet.truststore.digest', { annotations: { 'io.signet.truststore.digest': 'x' } }],
  ])("validateBundle names '%s'", (field, change) => {
    const error = (() => {
      try {
        validateBundle({ ...bundle, ...change });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).details).toEqual({ field });
  });
});
