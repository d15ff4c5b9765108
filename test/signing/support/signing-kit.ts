import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encode as encodeCbor, Tag } from 'cbor2';
import { KEY_SPEC_INFO, KeySpec, nodeHashName } from '../../../src/pki/key-spec';
import { ecdsaRawToDer } from '../../../src/hsm/ecdsa-signature';

/** Helpers shared by the signing tests: OpenSSL's CLI as the verifier, Notary JWS signing inputs. */

export const SUBJECT = { C: 'US', ST: 'Washington', O: 'Example Corp', CN: 'signing-test' };

export function openssl(args: string[], cwd: string, input?: Buffer): { ok: boolean; out: string } {
  const result = spawnSync('openssl', args, { cwd, input, encoding: 'utf8' });
  return { ok: result.status === 0, out: `${result.stdout}${result.stderr}` };
}

function pem(derB64: string): string {
  return `-----BEGIN CERTIFICATE-----\n${derB64.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
}

/**
 * OpenSSL's verdict on `signature` over `signedBytes` (the message, which OpenSSL hashes) with the
 * public key of the chain's leaf. ECDSA signatures are raw r‖s unless `format` is 'der'.
 * True only for "Verified OK".
 */
export function opensslVerifiesMessage(
  dir: string,
  spec: KeySpec,
  signedBytes: Buffer,
  signatureB64: string,
  chain: string[],
  format: 'raw' | 'der' = 'raw',
): boolean {
  fs.mkdirSync(dir, { recursive: true });
  const info = KEY_SPEC_INFO[spec];
  fs.writeFileSync(path.join(dir, 'leaf.pem'), pem(chain[0]));
  if (!openssl(['x509', '-in', 'leaf.pem', '-pubkey', '-noout', '-out', 'pub.pem'], dir).ok) return false;
  fs.writeFileSync(path.join(dir, 'message.bin'), signedBytes);
  const signature = Buffer.from(signatureB64, 'base64');
  fs.writeFileSync(
    path.join(dir, 'sig.bin'),
    info.kind === 'EC' && format === 'raw' ? ecdsaRawToDer(signature) : signature,
  );
  const pss = info.kind === 'RSA' ? ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest'] : [];
  const result = openssl(
    ['dgst', `-${nodeHashName(info.hash)}`, '-verify', 'pub.pem', ...pss, '-signature', 'sig.bin', 'message.bin'],
    dir,
  );
  return result.ok && result.out.trim() === 'Verified OK';
}

/** `openssl verify -x509_strict` of the leaf against the chain's root, intermediates untrusted. */
export function opensslVerifiesChain(dir: string, chain: string[]): { ok: boolean; out: string } {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'leaf.pem'), pem(chain[0]));
  fs.writeFileSync(path.join(dir, 'untrusted.pem'), chain.slice(1, -1).map(pem).join(''));
  fs.writeFileSync(path.join(dir, 'root.pem'), pem(chain[chain.length - 1]));
  const args = [
    'verify',
    '-x509_strict',
    '-CAfile',
    'root.pem',
    ...(chain.length > 2 ? ['-untrusted', 'untrusted.pem'] : []),
    'leaf.pem',
  ];
  return openssl(args, dir);
}

export function sha(spec: KeySpec, data: Buffer | string): Buffer {
  return crypto.createHash(nodeHashName(KEY_SPEC_INFO[spec].hash)).update(data).digest();
}

/**
 * A Notary JWS signing input for an OCI image manifest, as notation-go builds it:
 * b64url(protected header) "." b64url({targetArtifact}). `signingTime` is explicit so two signings
 * of one image differ.
 */
export function notarySigningInput(
  spec: KeySpec,
  image: string,
  signingTime: Date,
  alg = KEY_SPEC_INFO[spec].jwsAlg,
): { signingInput: string; digest: string; size: number } {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: `sha256:${hex(image + ':config')}`,
        size: 1472,
      },
      layers: [
        {
          mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
          digest: `sha256:${hex(image + ':layer')}`,
          size: 3623807,
        },
      ],
    }),
  );
  const digest = `sha256:${hex(manifest)}`;
  const header = {
    alg,
    crit: ['io.cncf.notary.signingScheme'],
    cty: 'application/vnd.cncf.notary.payload.v1+json',
    'io.cncf.notary.signingScheme': 'notary.x509',
    'io.cncf.notary.signingTime': signingTime.toISOString().replace(/\.\d{3}Z$/, 'Z'),
  };
  const payload = {
    targetArtifact: {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest,
      size: manifest.length,
      annotations: { 'org.example.image': image },
    },
  };
  const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return { signingInput: `${b64url(header)}.${b64url(payload)}`, digest, size: manifest.length };
}

/** COSE algorithm identifiers (RFC 9053) by JWS name. */
export const COSE_ALG: Record<string, number> = {
  ES256: -7,
  ES384: -35,
  ES512: -36,
  PS256: -37,
  PS384: -38,
  PS512: -39,
};

/**
 * The COSE `Sig_structure` Notation hands a plugin with `--signature-format cose`
 * (notation-core-go signature/cose: go-cose's ToBeSigned): CBOR
 * `["Signature1", bstr(protected header map), bstr(external_aad, empty), bstr(Notary payload JSON)]`,
 * the protected header holding alg (1), crit (2), content type (3) and the Notary labels.
 * `payloadJson` replaces the payload (hostile variants); `header` adds or replaces header entries.
 */
export function notaryCoseSigStructure(
  spec: KeySpec,
  image: string,
  signingTime: Date,
  options: { payloadJson?: string; header?: Array<[number | string, unknown]>; alg?: number } = {},
): { sigStructure: Buffer; digest: string; size: number } {
  const jws = notarySigningInput(spec, image, signingTime);
  const payload = options.payloadJson ?? Buffer.from(jws.signingInput.split('.')[1], 'base64url').toString('utf8');
  const header = new Map<number | string, unknown>([
    [1, options.alg ?? COSE_ALG[KEY_SPEC_INFO[spec].jwsAlg]],
    [2, ['io.cncf.notary.signingScheme']],
    [3, 'application/vnd.cncf.notary.payload.v1+json'],
    ['io.cncf.notary.signingScheme', 'notary.x509'],
    ['io.cncf.notary.signingTime', new Tag(1, Math.floor(signingTime.getTime() / 1000))],
  ]);
  for (const [label, value] of options.header ?? []) header.set(label, value);
  // Uint8Array.from: cbor2 writes a byte string only for a Uint8Array of its own realm (Jest runs tests in another).
  const sigStructure = encodeCbor([
    'Signature1',
    encodeCbor(header),
    new Uint8Array(0),
    Uint8Array.from(Buffer.from(payload, 'utf8')),
  ]);
  return { sigStructure: Buffer.from(sigStructure), digest: jws.digest, size: jws.size };
}

function hex(data: string | Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

export function artifactDigest(label: string): string {
  return `sha256:${hex(label)}`;
}
