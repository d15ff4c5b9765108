import 'reflect-metadata';
import * as crypto from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { DigestSigner, HashAlgorithm } from './key-spec';
import { createNodeSigner } from '../../test/support/node-signer';
import { signatureSchemeFor } from './signature-algorithms';
import { digestSignerCrypto, signerCryptoKey } from './x509-signer-provider';

describe('DigestSignerCrypto', () => {
  it('sends the TBS digest to the signer and lets @peculiar/x509 generators build verifiable certificates', async () => {
    const inner = createNodeSigner('EC-384');
    const calls: { digest: Buffer; hash: HashAlgorithm }[] = [];
    const signer: DigestSigner = {
      spec: inner.spec,
      publicKeySpki: inner.publicKeySpki,
      signDigest: (digest, hash, padding) => {
        calls.push({ digest, hash });
        return inner.signDigest(digest, hash, padding);
      },
    };
    const key = signerCryptoKey(signer, signatureSchemeFor('EC-384'));
    const cert = await x509.X509CertificateGenerator.createSelfSigned(
      { serialNumber: '01', name: 'CN=provider test', keys: { privateKey: key, publicKey: key } },
      digestSignerCrypto,
    );
    const node = new crypto.X509Certificate(Buffer.from(cert.rawData));
    expect(node.verify(inner.publicKey)).toBe(true);
    expect(calls).toHaveLength(1);
    expect(calls[0].hash).toBe('SHA-384');
    expect(calls[0].digest).toHaveLength(48);
  });

  it('exports only the SPKI of a signer key and refuses other algorithms', async () => {
    const signer = createNodeSigner('EC-256');
    const key = signerCryptoKey(signer, signatureSchemeFor('EC-256'));
    expect(Buffer.from(await digestSignerCrypto.subtle.exportKey('spki', key))).toEqual(signer.publicKeySpki);
    await expect(digestSignerCrypto.subtle.exportKey('pkcs8', key)).rejects.toThrow(/spki/);
    await expect(
      digestSignerCrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' } as never, key, new Uint8Array(1)),
    ).rejects.toThrow(/does not match/);
    expect(() => signerCryptoKey(signer, signatureSchemeFor('EC-384'))).toThrow(/EC-384/);
  });

  it('delegates ordinary keys to Node WebCrypto', async () => {
    const pair = (await digestSignerCrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ])) as crypto.webcrypto.CryptoKeyPair;
    const data = new Uint8Array([1, 2, 3]);
    const signature = await digestSignerCrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, pair.privateKey, data);
    expect(
      await crypto.webcrypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, pair.publicKey, signature, data),
    ).toBe(true);
    expect(digestSignerCrypto.getRandomValues(new Uint8Array(8))).toHaveLength(8);
  });
});
