import * as crypto from 'node:crypto';
import { KEY_SPECS, KEY_SPEC_INFO, nodeHashName } from './key-spec';
import { createNodeSigner } from '../../test/support/node-signer';
import { derNull, oid, sequence } from './der-writer';
import {
  describeSignatureAlgorithm,
  ecdsaDerToRaw,
  ecdsaRawToDer,
  signTbs,
  signatureSchemeFor,
  verificationAlgorithm,
  verifySignature,
  verifySignatureInBackground,
} from './signature-algorithms';

describe(signatureSchemeFor.name, () => {
  it.each([
    ['EC-256', 'ecdsa-with-SHA256', '300a06082a8648ce3d040302'],
    ['EC-384', 'ecdsa-with-SHA384', '300a06082a8648ce3d040303'],
    ['EC-521', 'ecdsa-with-SHA512', '300a06082a8648ce3d040304'],
  ] as const)('%s signs with %s, parameters absent', (spec, name, hex) => {
    const scheme = signatureSchemeFor(spec);
    expect(scheme.name).toBe(name);
    expect(scheme.algorithmIdentifier.toString('hex')).toBe(hex);
  });

  it('RSA-3072 uses RSASSA-PSS with SHA-384, MGF1-SHA-384 and salt 48 — the encoding OpenSSL writes', () => {
    // From `openssl req -x509 -sha384 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest`.
    expect(signatureSchemeFor('RSA-3072').algorithmIdentifier.toString('hex')).toBe(
      '304106092a864886f70d01010a3034a00f300d06096086480165030402020500a11c301a06092a864886f70d010108300d06096086480165030402020500a203020130',
    );
    expect(signatureSchemeFor('RSA-3072', 'pkcs1').algorithmIdentifier.toString('hex')).toBe(
      '300d06092a864886f70d01010c0500',
    );
  });

  it('never pairs a key with SHA-1', () => {
    for (const spec of KEY_SPECS) {
      for (const padding of ['pss', 'pkcs1'] as const) {
        const scheme = signatureSchemeFor(spec, padding);
        expect(scheme.hash).toBe(KEY_SPEC_INFO[spec].hash);
        expect(describeSignatureAlgorithm(scheme.algorithmIdentifier)).toMatchObject({
          hash: scheme.hash,
          kind: scheme.kind,
        });
      }
    }
  });
});

describe(describeSignatureAlgorithm.name, () => {
  it('refuses SHA-1 and MD5 based algorithms and PSS with a salt other than the hash length', () => {
    expect(describeSignatureAlgorithm(sequence(oid('1.2.840.113549.1.1.5'), derNull()))).toBeNull(); // sha1WithRSA
    expect(describeSignatureAlgorithm(sequence(oid('1.2.840.113549.1.1.4'), derNull()))).toBeNull(); // md5WithRSA
    expect(describeSignatureAlgorithm(sequence(oid('1.2.840.10045.4.1')))).toBeNull(); // ecdsa-with-SHA1
    const pss = signatureSchemeFor('RSA-2048').algorithmIdentifier;
    const wrongSalt = Buffer.from(pss);
    wrongSalt[wrongSalt.length - 1] = 0x14;
    expect(describeSignatureAlgorithm(wrongSalt)).toBeNull();
    expect(describeSignatureAlgorithm(Buffer.from('garbage'))).toBeNull();
  });
});

describe(ecdsaRawToDer.name, () => {
  it.each(['EC-256', 'EC-384', 'EC-521'] as const)(
    'turns %s r‖s into a DER signature Node verifies, and back',
    (spec) => {
      const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: KEY_SPEC_INFO[spec].curve! });
      const hash = nodeHashName(KEY_SPEC_INFO[spec].hash);
      for (let i = 0; i < 20; i++) {
        const data = crypto.randomBytes(40);
        const raw = crypto.sign(hash, data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
        const der = ecdsaRawToDer(raw);
        expect(crypto.verify(hash, data, { key: publicKey, dsaEncoding: 'der' }, der)).toBe(true);
        expect(ecdsaDerToRaw(der, raw.length / 2)).toEqual(raw);
      }
    },
  );

  it('encodes small and high-bit integers minimally', () => {
    const raw = Buffer.concat([Buffer.alloc(31), Buffer.from([1]), Buffer.from([0x80]), Buffer.alloc(31, 0xff)]);
    expect(ecdsaRawToDer(raw).subarray(0, 9).toString('hex')).toBe('302602010102210080');
  });
});

describe(signTbs.name, () => {
  it.each(KEY_SPECS)('produces X.509 signature values for %s that verify with the public key', async (spec) => {
    const signer = createNodeSigner(spec);
    const data = crypto.randomBytes(300);
    for (const padding of ['pss', 'pkcs1'] as const) {
      const scheme = signatureSchemeFor(spec, padding);
      const signature = await signTbs(signer, scheme, [data.subarray(0, 100), data.subarray(100)]);
      const algorithm = describeSignatureAlgorithm(scheme.algorithmIdentifier)!;
      expect(verifySignature(signer.publicKeySpki, algorithm, data, signature)).toBe(true);
      expect(verifySignature(signer.publicKeySpki, algorithm, Buffer.concat([data, Buffer.from([0])]), signature)).toBe(
        false,
      );
    }
  });

  it.each(KEY_SPECS)(
    'verifies %s signatures on the thread pool with the algorithm derived from the scheme',
    async (spec) => {
      const signer = createNodeSigner(spec);
      const other = createNodeSigner(spec);
      const data = crypto.randomBytes(300);
      for (const padding of ['pss', 'pkcs1'] as const) {
        const scheme = signatureSchemeFor(spec, padding);
        const algorithm = verificationAlgorithm(scheme);
        expect(algorithm).toEqual(describeSignatureAlgorithm(scheme.algorithmIdentifier));
        const signature = await signTbs(signer, scheme, data);
        expect(await verifySignatureInBackground(signer.publicKey, algorithm, data, signature)).toBe(true);
        expect(
          await verifySignatureInBackground(
            signer.publicKey,
            algorithm,
            Buffer.concat([data, Buffer.from([0])]),
            signature,
          ),
        ).toBe(false);
        expect(await verifySignatureInBackground(other.publicKey, algorithm, data, signature)).toBe(false);
        // Garbage instead of a signature is a failed verification, not an exception.
        expect(await verifySignatureInBackground(signer.publicKey, algorithm, data, Buffer.from([0x30, 0x01]))).toBe(
          false,
        );
      }
    },
  );

  it('refuses a scheme made for another key spec', async () => {
    await expect(signTbs(createNodeSigner('EC-256'), signatureSchemeFor('EC-384'), Buffer.alloc(1))).rejects.toThrow(
      /EC-384/,
    );
  });
});
