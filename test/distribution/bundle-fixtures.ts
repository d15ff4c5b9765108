import { createHash, randomBytes } from 'node:crypto';
import * as tar from 'tar-stream';
import { TruststoreBundle } from '../../src/distribution/drivers/trust-target';

/**
 * Dummy truststore bundles for transport tests: three layers shaped like the real formats (a PEM
 * file of CERTIFICATE blocks, a Notation trust-store tar, a Ratify YAML) with made-up content. The
 * bundle formats themselves are tested with the truststore module; here only bytes matter.
 */
export const MEDIA_TYPES = {
  pem: 'application/x-pem-file',
  notation: 'application/vnd.signet.truststore.notation.v1.tar',
  ratify: 'application/yaml',
} as const;

export async function dummyBundle(version: number, seed = randomBytes(8).toString('hex')): Promise<TruststoreBundle> {
  const certBody = (label: string) =>
    Buffer.from(`dummy root certificate ${label} ${seed} `.repeat(6))
      .toString('base64')
      .replace(/(.{64})/g, '$1\n')
      .trim();
  const pem = Buffer.from(
    `-----BEGIN CERTIFICATE-----\n${certBody('a')}\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n${certBody('b')}\n-----END CERTIFICATE-----\n`,
  );
  const trustPolicy = JSON.stringify({
    version: '1.0',
    trustPolicies: [
      {
        name: 'signet',
        registryScopes: ['*'],
        signatureVerification: { level: 'strict' },
        trustStores: ['ca:signet'],
        trustedIdentities: ['*'],
      },
    ],
  });
  const notationTar = await tarOf({
    'trustpolicy.json': trustPolicy,
    'truststore/x509/ca/signet/root.pem': pem.toString('utf8'),
  });
  const ratify = Buffer.from(
    `apiVersion: config.ratify.deislabs.io/v1beta1\nkind: KeyManagementProvider\nmetadata:\n  name: signet\nspec:\n  type: inline\n  parameters:\n    contentType: certificate\n    value: |\n${pem
      .toString('utf8')
      .trim()
      .split('\n')
      .map((l) => `      ${l}`)
      .join('\n')}\n`,
  );
  const layers = [
    { mediaType: MEDIA_TYPES.pem, title: 'truststore.pem', content: pem },
    { mediaType: MEDIA_TYPES.notation, title: 'notation-truststore.tar', content: notationTar },
    { mediaType: MEDIA_TYPES.ratify, title: 'ratify-kmp.yaml', content: ratify },
  ];
  const canonical = createHash('sha256');
  for (const layer of layers) canonical.update(layer.title).update('\0').update(layer.content);
  return { version, digest: `sha256:${canonical.digest('hex')}`, layers, createdAt: '2026-01-02T03:04:05Z' };
}

function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mtime: new Date(0), mode: 0o644 }, content);
  pack.finalize();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    pack.on('data', (chunk: unknown) => {
      chunks.push(chunk as Buffer);
    });
    pack.on('end', () => resolve(Buffer.concat(chunks)));
    pack.on('error', reject);
  });
}

export function sha256(content: Buffer): string {
  return `sha256:${createHash('sha256').update(content).digest('hex')}`;
}

/** A signal that never fires, for calls the test does not cancel. */
export function noAbort(): AbortSignal {
  return new AbortController().signal;
}
