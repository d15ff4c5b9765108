import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { KeySpec } from '../../src/pki/key-spec';
import { caGenerationUrls } from '../../src/pki/ca-urls';
import {
  IssuedCertificate,
  issueTimestampingCertificate,
  issueTsaRootCertificate,
  loadCaIssuer,
} from '../../src/pki/certificate-issuer';
import { derToPem } from '../../src/pki/pem-codec';
import { octetString, oid, sequence, smallInteger, tlv } from '../../src/pki/der-writer';
import { NodeDigestSigner, createNodeSigner } from '../support/node-signer';

const execFileAsync = promisify(execFile);

export const TEST_POLICY = '1.3.6.1.4.1.32473.3161.99';

export interface TestTsa {
  rootSigner: NodeDigestSigner;
  root: IssuedCertificate;
  tsaSigner: NodeDigestSigner;
  tsa: IssuedCertificate;
}

/** TSA root → TSA signing certificate, both on Node-crypto signers (pure tests, no HSM). */
export async function createTestTsa(tsaSpec: KeySpec = 'EC-256', rootSpec: KeySpec = 'EC-384'): Promise<TestTsa> {
  const subject = { C: 'DE', ST: 'Berlin', O: 'Signet Test' };
  const rootSigner = createNodeSigner(rootSpec);
  const root = await issueTsaRootCertificate({
    signer: rootSigner,
    subject: { ...subject, CN: 'Test TSA Root' },
    validityDays: 3650,
  });
  const issuer = loadCaIssuer({
    certificate: root.der,
    signer: rootSigner,
    urls: caGenerationUrls('http://signet.test:8080', 'tsa-root-g1'),
  });
  const tsaSigner = createNodeSigner(tsaSpec);
  const tsa = await issueTimestampingCertificate({
    issuer,
    subject: { ...subject, CN: 'Test TSA' },
    publicKeySpki: tsaSigner.publicKeySpki,
    validityDays: 365,
  });
  return { rootSigner, root, tsaSigner, tsa };
}

const HASH_OID = {
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  md5: '1.2.840.113549.2.5',
} as const;

export interface QueryOptions {
  /** Dotted OID or a name from HASH_OID. */
  hashOid?: string;
  hashedMessage?: Buffer;
  /** Write NULL parameters in the AlgorithmIdentifier. */
  nullParameters?: boolean;
  version?: number;
  policy?: string;
  nonce?: bigint;
  certReq?: boolean;
  /** Raw extensions [0] content. */
  extensions?: Buffer;
  trailing?: Buffer;
}

/** A TimeStampReq built by hand, for shapes the OpenSSL CLI will not produce. */
export function buildQuery(options: QueryOptions = {}): Buffer {
  const hashOid = HASH_OID[options.hashOid as keyof typeof HASH_OID] ?? options.hashOid ?? HASH_OID.sha256;
  const algorithm = options.nullParameters ? sequence(oid(hashOid), Buffer.from([0x05, 0x00])) : sequence(oid(hashOid));
  const imprint = sequence(algorithm, octetString(options.hashedMessage ?? Buffer.alloc(32, 0xab)));
  const fields = [smallInteger(options.version ?? 1), imprint];
  if (options.policy) fields.push(oid(options.policy));
  if (options.nonce !== undefined) fields.push(smallInteger(options.nonce));
  if (options.certReq) fields.push(Buffer.from([0x01, 0x01, 0xff]));
  if (options.extensions) fields.push(tlv(0xa0, options.extensions));
  const query = sequence(...fields);
  return options.trailing ? Buffer.concat([query, options.trailing]) : query;
}

/** A scratch directory with helpers to run `openssl` on files in it. */
export class OpenSslWorkspace {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'signet-tsa-'));

  file(name: string): string {
    return path.join(this.dir, name);
  }

  write(name: string, content: Buffer | string): string {
    fs.writeFileSync(this.file(name), content);
    return this.file(name);
  }

  writeCertificate(name: string, der: Buffer): string {
    return this.write(name, derToPem(der, 'CERTIFICATE'));
  }

  read(name: string): Buffer {
    return fs.readFileSync(this.file(name));
  }

  async openssl(args: string[]): Promise<string> {
    const { stdout, stderr } = await execFileAsync('openssl', args, { cwd: this.dir, encoding: 'utf8' });
    return stdout + stderr;
  }

  /** Runs openssl and returns whether it exited 0, with its output. */
  async tryOpenssl(args: string[]): Promise<{ ok: boolean; output: string }> {
    try {
      return { ok: true, output: await this.openssl(args) };
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string };
      return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
    }
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The nonce OpenSSL printed for a query (`Nonce: 0x…`), as a bigint. */
export function nonceFromText(text: string): bigint | undefined {
  const match = /Nonce: (0x[0-9A-Fa-f]+)/.exec(text);
  return match ? BigInt(match[1]) : undefined;
}
