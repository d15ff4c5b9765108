import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { KeySpec } from '../../src/pki/key-spec';
import { caGenerationUrls } from '../../src/pki/ca-urls';
import {
  CaIssuer,
  IssuedCertificate,
  issueCodeSigningCertificate,
  issueIssuingCaCertificate,
  issueRootCaCertificate,
  loadCaIssuer,
} from '../../src/pki/certificate-issuer';
import { RsaPadding } from '../../src/pki/signature-algorithms';
import { CertificateSubject } from '../../src/pki/subject-name';
import { NodeDigestSigner, createNodeSigner } from '../support/node-signer';

/** Shared by the ca unit specs and the OpenSSL integration specs. */
export const BASE_URL = 'http://signet.test:8080';

export function subject(CN: string, extra: Partial<CertificateSubject> = {}): CertificateSubject {
  return { C: 'DE', ST: 'Berlin', O: 'Signet Test', CN, ...extra };
}

export interface TestHierarchy {
  rootSigner: NodeDigestSigner;
  root: IssuedCertificate;
  rootIssuer: CaIssuer;
  issuingSigner: NodeDigestSigner;
  issuing: IssuedCertificate;
  issuingIssuer: CaIssuer;
}

/** Root → issuing CA, both with `caSpec`, with generation URLs under BASE_URL. */
export async function createHierarchy(
  caSpec: KeySpec,
  options: { rsaPadding?: RsaPadding; now?: Date } = {},
): Promise<TestHierarchy> {
  const rootSigner = createNodeSigner(caSpec);
  const root = await issueRootCaCertificate({
    signer: rootSigner,
    subject: subject(`Test Root ${caSpec}`),
    validityDays: 3650,
    rsaPadding: options.rsaPadding,
    now: options.now,
  });
  const rootIssuer = loadCaIssuer({
    certificate: root.der,
    signer: rootSigner,
    urls: caGenerationUrls(BASE_URL, 'root-g1'),
    rsaPadding: options.rsaPadding,
  });
  const issuingSigner = createNodeSigner(caSpec);
  const issuing = await issueIssuingCaCertificate({
    issuer: rootIssuer,
    subject: subject(`Test Issuing CA ${caSpec}`),
    publicKeySpki: issuingSigner.publicKeySpki,
    validityDays: 1825,
    now: options.now,
  });
  const issuingIssuer = loadCaIssuer({
    certificate: issuing.der,
    signer: issuingSigner,
    urls: caGenerationUrls(BASE_URL, 'issuing-g1'),
    rsaPadding: options.rsaPadding,
  });
  return { rootSigner, root, rootIssuer, issuingSigner, issuing, issuingIssuer };
}

export async function issueLeaf(
  issuer: CaIssuer,
  leafSpec: KeySpec = 'EC-256',
  options: { validityDays?: number; subject?: CertificateSubject; now?: Date } = {},
): Promise<{ signer: NodeDigestSigner; leaf: IssuedCertificate }> {
  const signer = createNodeSigner(leafSpec);
  const leaf = await issueCodeSigningCertificate({
    issuer,
    subject: options.subject ?? subject(`release-${leafSpec}`),
    publicKeySpki: signer.publicKeySpki,
    validityDays: options.validityDays ?? 365,
    now: options.now,
  });
  return { signer, leaf };
}

const execFileAsync = promisify(execFile);

export interface OpenSslResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the OpenSSL CLI; never throws on a non-zero exit (tests assert on the code). */
export async function openssl(args: string[], options: { cwd?: string } = {}): Promise<OpenSslResult> {
  try {
    const { stdout, stderr } = await execFileAsync('openssl', args, { cwd: options.cwd, maxBuffer: 256 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof failed.code === 'number' ? failed.code : 1,
      stdout: failed.stdout ?? '',
      stderr: failed.stderr ?? '',
    };
  }
}

export function tempDir(prefix = 'signet-ca-'): {
  dir: string;
  file: (name: string, content?: string | Buffer) => string;
  cleanup: () => void;
} {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return {
    dir,
    file: (name, content) => {
      const full = path.join(dir, name);
      if (content !== undefined) fs.writeFileSync(full, content);
      return full;
    },
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
