import * as x509 from '@peculiar/x509';
import { spawnSync } from 'node:child_process';
import { createPublicKey, verify, webcrypto, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tar from 'tar-stream';
import { Readable } from 'node:stream';
import type { TestRegistry } from '../support/registry';
import { pullWithSkopeo } from './distribution-helpers';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/**
 * A region's verifier for the fleet drill, applying NOTARY.md's rules the way Notation does, with
 * nothing from Signet's code: it trusts exactly the root certificates its region's registry serves
 * now (the `ca` store of the pushed Notation layout), checks the chain (order, signatures, nothing
 * but the root self-signed, a root byte-identical to a trusted one), the profiles (leaf: critical KU
 * digitalSignature only, EKU codeSigning only, not a CA; intermediates: CA with pathLen 0), validity
 * of every certificate now, no SHA-1, and revocation of the leaf and the intermediates:
 *   - `ocsp`: the leaf over OCSP at its AIA URL (openssl builds the request and checks the answer),
 *     the intermediates through their CRL distribution point;
 *   - `crl-url`: every certificate through the CRL at its CRL distribution point;
 *   - `bundle-crl` (a region marked offline): only the CRLs inside the region's bundle.
 * CRLs must verify against the issuer, be current and list no serial of the chain.
 */
export type RevocationMode = 'ocsp' | 'crl-url' | 'bundle-crl';

export interface DrillSignature {
  label: string;
  payload: Buffer;
  signature: Buffer;
  /** DER, leaf first, root last. */
  chain: Buffer[];
}

export interface Verdict {
  ok: boolean;
  reason: string;
}

/** Fetches a public Signet URL (`http://signet.test:8080/pki/…`, `/ocsp/…`) — in-process in the drill. */
export type PublicFetch = (
  method: 'GET' | 'POST',
  url: string,
  body?: Buffer,
) => Promise<{ status: number; body: Buffer }>;

export class RegionVerifier {
  roots: Buffer[] = [];
  bundleCrls: Buffer[] = [];
  servedVersion?: number;
  servedDigest?: string;

  constructor(
    readonly region: string,
    private readonly registry: TestRegistry,
    private readonly repository: string,
    readonly revocation: RevocationMode,
    private readonly fetchPublic: PublicFetch,
    private readonly dir: string,
  ) {
    fs.mkdirSync(dir, { recursive: true });
  }

  /** Reads what the region's registry serves now; keeps the last bundle while the registry is unreachable. */
  async refresh(): Promise<void> {
    let pulled;
    try {
      pulled = await pullWithSkopeo(this.registry, this.repository);
    } catch {
      return;
    }
    const files = await untar(pulled.layers.get('notation-truststore.tar')!);
    this.roots = [...files.entries()]
      .filter(([name]) => /^truststore\/x509\/ca\/[^/]+\/[^/]+$/.test(name))
      .flatMap(([, content]) =>
        (content.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
          (pem) => new X509Certificate(pem).raw,
        ),
      );
    const pem = pulled.layers.get('truststore.pem')!.toString('utf8');
    this.bundleCrls = (pem.match(/-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g) ?? []).map((block) =>
      Buffer.from(block.replace(/-----[A-Z0-9 ]+-----|\s/g, ''), 'base64'),
    );
    this.servedVersion = Number(pulled.manifest.annotations['org.opencontainers.image.version']);
    this.servedDigest = pulled.manifest.annotations['io.signet.truststore.digest'];
  }

  async verify(signature: DrillSignature, now = new Date()): Promise<Verdict> {
    const chain = signature.chain.map((der) => new X509Certificate(der));
    const parsed = signature.chain.map((der) => new x509.X509Certificate(der));
    if (chain.length < 2) return reject('the chain has no root');
    // Chain: each certificate issued and signed by the next; only the last one self-signed.
    for (let i = 0; i < chain.length; i++) {
      const issuer = chain[Math.min(i + 1, chain.length - 1)];
      if (!chain[i].checkIssued(issuer) || !chain[i].verify(issuer.publicKey))
        return reject(`certificate ${i} is not issued by certificate ${i + 1}`);
      const selfSigned = chain[i].checkIssued(chain[i]) && chain[i].verify(chain[i].publicKey);
      if (selfSigned !== (i === chain.length - 1))
        return reject(
          `certificate ${i} ${selfSigned ? 'is self-signed inside the chain' : 'is the last but not self-signed'}`,
        );
      if (/sha1/i.test(parsed[i].signatureAlgorithm.hash?.name ?? '')) return reject(`certificate ${i} uses SHA-1`);
    }
    // Trust: a certificate of the chain byte-identical to a root the region's registry serves.
    if (!signature.chain.some((der) => this.roots.some((root) => root.equals(der))))
      return reject('no certificate of the chain is a trusted root of this region');
    // Profiles.
    const profile = leafProfileProblem(parsed[0]) ?? parsed.slice(1, -1).map(intermediateProblem).find(Boolean);
    if (profile) return reject(profile);
    // Validity now, every certificate.
    for (let i = 0; i < chain.length; i++) {
      if (new Date(chain[i].validFrom) > now || new Date(chain[i].validTo) < now)
        return reject(`certificate ${i} is not valid now (${chain[i].validFrom} – ${chain[i].validTo})`);
    }
    // The signature itself.
    const key = createPublicKey({ key: Buffer.from(parsed[0].publicKey.rawData), format: 'der', type: 'spki' });
    if (!verify('sha256', signature.payload, { key, dsaEncoding: 'ieee-p1363' }, signature.signature))
      return reject('the signature does not verify');
    // Revocation of the leaf and every intermediate.
    for (let i = 0; i < chain.length - 1; i++) {
      const status =
        this.revocation === 'ocsp' && i === 0
          ? await this.ocspStatus(signature.chain[0], signature.chain[1], signature.chain.at(-1)!)
          : await this.crlStatus(parsed[i], parsed[i + 1], now);
      if (status !== 'good') return reject(`certificate ${i}: revocation ${status}`);
    }
    return { ok: true, reason: 'verified' };
  }

  private async crlStatus(certificate: x509.X509Certificate, issuer: x509.X509Certificate, now: Date): Promise<string> {
    let candidates: Buffer[];
    if (this.revocation === 'bundle-crl') {
      candidates = this.bundleCrls;
    } else {
      const url = crlUrl(certificate);
      if (!url) return 'unavailable (no CRL distribution point)';
      if (!url.startsWith('http://')) return 'unavailable (CRL URL is not http://)';
      const answer = await this.fetchPublic('GET', url);
      if (answer.status !== 200) return `unavailable (CRL fetch ${answer.status})`;
      candidates = [answer.body];
    }
    for (const der of candidates) {
      const crl = new x509.X509Crl(der);
      if (crl.issuer !== issuer.subject || !(await crl.verify({ publicKey: issuer }))) continue;
      if (!crl.nextUpdate || crl.nextUpdate < now || crl.thisUpdate > now) return 'unavailable (CRL not current)';
      return crl.findRevoked(certificate.serialNumber) ? 'revoked' : 'good';
    }
    return 'unavailable (no CRL from the issuer)';
  }

  /** OCSP at the leaf's AIA URL, as `openssl ocsp` asks and checks it (signature chained to the root, status, freshness). */
  private async ocspStatus(leaf: Buffer, issuer: Buffer, root: Buffer): Promise<string> {
    const url = ocspUrl(new x509.X509Certificate(leaf));
    if (!url) return 'unavailable (no OCSP URL)';
    const work = fs.mkdtempSync(path.join(this.dir, 'ocsp-'));
    try {
      const write = (name: string, der: Buffer) =>
        fs.writeFileSync(path.join(work, name), new X509Certificate(der).toString());
      write('leaf.pem', leaf);
      write('issuer.pem', issuer);
      write('root.pem', root);
      const request = spawnSync(
        'openssl',
        ['ocsp', '-issuer', 'issuer.pem', '-cert', 'leaf.pem', '-no_nonce', '-reqout', 'req.der'],
        { cwd: work, encoding: 'utf8' },
      );
      if (request.status !== 0) return `unavailable (openssl: ${request.stderr.trim()})`;
      const answer = await this.fetchPublic('POST', url, fs.readFileSync(path.join(work, 'req.der')));
      if (answer.status !== 200) return `unavailable (OCSP ${answer.status})`;
      fs.writeFileSync(path.join(work, 'resp.der'), answer.body);
      const checked = spawnSync(
        'openssl',
        [
          'ocsp',
          '-respin',
          'resp.der',
          '-issuer',
          'issuer.pem',
          '-cert',
          'leaf.pem',
          '-CAfile',
          'root.pem',
          '-verify_other',
          'issuer.pem',
          '-no_nonce',
          '-resp_text',
        ],
        {
          cwd: work,
          encoding: 'utf8',
        },
      );
      const out = `${checked.stdout}${checked.stderr}`;
      if (!out.includes('Response verify OK')) return 'unavailable (OCSP response does not verify)';
      const status = /leaf\.pem: (good|revoked|unknown)/.exec(out)?.[1];
      if (status === 'good') return 'good';
      return status === 'revoked' ? 'revoked' : 'unavailable (OCSP unknown)';
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  }
}

function reject(reason: string): Verdict {
  return { ok: false, reason };
}

function leafProfileProblem(leaf: x509.X509Certificate): string | undefined {
  const ku = leaf.getExtension(x509.KeyUsagesExtension);
  if (!ku?.critical || ku.usages !== x509.KeyUsageFlags.digitalSignature)
    return 'leaf key usage must be critical digitalSignature only';
  const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension);
  if (!eku || eku.usages.length !== 1 || eku.usages[0] !== '1.3.6.1.5.5.7.3.3')
    return 'leaf extended key usage must be codeSigning only';
  if (leaf.getExtension(x509.BasicConstraintsExtension)?.ca) return 'the leaf is a CA';
  return undefined;
}

function intermediateProblem(certificate: x509.X509Certificate): string | undefined {
  const bc = certificate.getExtension(x509.BasicConstraintsExtension);
  if (!bc?.critical || !bc.ca || bc.pathLength !== 0)
    return 'an intermediate must be a critical CA:TRUE with pathLen 0';
  const ku = certificate.getExtension(x509.KeyUsagesExtension);
  if (!ku || !(ku.usages & x509.KeyUsageFlags.keyCertSign)) return 'an intermediate must have keyCertSign';
  return undefined;
}

function crlUrl(certificate: x509.X509Certificate): string | undefined {
  const dp = certificate.getExtension(x509.CRLDistributionPointsExtension);
  return dp?.distributionPoints
    .flatMap((p) => p.distributionPoint?.fullName ?? [])
    .map((name) => name.uniformResourceIdentifier)
    .find(Boolean);
}

function ocspUrl(certificate: x509.X509Certificate): string | undefined {
  const aia = certificate.getExtension(x509.AuthorityInfoAccessExtension);
  return aia?.ocsp.map((name) => (name.type === 'url' ? name.value : undefined)).find(Boolean);
}

async function untar(tarball: Buffer): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const extract = tar.extract();
  await new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: unknown) => {
        chunks.push(chunk as Buffer);
      });
      stream.on('end', () => {
        if (header.type === 'file') files.set(header.name, Buffer.concat(chunks));
        next();
      });
      stream.resume();
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
    Readable.from([tarball]).pipe(extract);
  });
  return files;
}
