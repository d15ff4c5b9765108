import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KEY_SPEC_INFO, KeySpec } from '../../../src/pki/key-spec';

/**
 * Certificates made with the OpenSSL CLI, independently of Signet's own CA code, following the
 * NOTARY.md profiles: root (CA, keyCertSign+cRLSign) → issuing CA (pathlen 0) → code-signing leaf
 * (digitalSignature, EKU codeSigning, C/ST/O subject).
 */
export interface IssuedKey {
  spec: KeySpec;
  privateKey: crypto.KeyObject;
  /** DER, leaf → issuing CA → root. */
  chain: Buffer[];
  leafPemFile: string;
}

export interface Pki {
  dir: string;
  rootPemFile: string;
  issue(name: string, spec: KeySpec): IssuedKey;
  /** A TLS server certificate for 127.0.0.1 from a separate private CA, for the https double. */
  tlsServer(): { key: string; cert: string; caFile: string };
}

export function openssl(args: string[], cwd: string): string {
  return execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

const EXTENSIONS = `
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[issuing]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[leaf]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[tls]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
`;

export function createPki(dir: string): Pki {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'ext.cnf'), EXTENSIONS);
  const run = (args: string[]) => openssl(args, dir);
  const serial = () =>
    `0x${crypto
      .randomBytes(12)
      .toString('hex')
      .replace(/^[89a-f]/, '1')}`;

  const selfSigned = (name: string, subject: string) => {
    run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384', '-out', `${name}.key`]);
    run(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`]);
    run([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-signkey',
      `${name}.key`,
      '-sha384',
      '-days',
      '3650',
      '-set_serial',
      serial(),
      '-extfile',
      'ext.cnf',
      '-extensions',
      'root',
      '-out',
      `${name}.pem`,
    ]);
  };
  const issueFrom = (ca: string, name: string, subject: string, section: string, keyArgs: string[], days: number) => {
    run(['genpkey', ...keyArgs, '-out', `${name}.key`]);
    run(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`]);
    run([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.pem`,
      '-CAkey',
      `${ca}.key`,
      '-sha384',
      '-days',
      String(days),
      '-set_serial',
      serial(),
      '-extfile',
      'ext.cnf',
      '-extensions',
      section,
      '-out',
      `${name}.pem`,
    ]);
  };
  const der = (name: string): Buffer =>
    execFileSync('openssl', ['x509', '-in', `${name}.pem`, '-outform', 'DER'], { cwd: dir });

  selfSigned('root', '/C=US/ST=Washington/O=Example Corp/CN=Example Signing Root');
  issueFrom(
    'root',
    'issuing',
    '/C=US/ST=Washington/O=Example Corp/CN=Example Issuing CA',
    'issuing',
    ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
    1825,
  );

  return {
    dir,
    rootPemFile: path.join(dir, 'root.pem'),
    issue(name, spec) {
      const info = KEY_SPEC_INFO[spec];
      const keyArgs =
        info.kind === 'EC'
          ? ['-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${info.curve}`]
          : ['-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${info.modulusBits}`];
      issueFrom('issuing', `leaf-${name}`, `/C=US/ST=Washington/O=Example Corp/CN=${name}`, 'leaf', keyArgs, 90);
      return {
        spec,
        privateKey: crypto.createPrivateKey(fs.readFileSync(path.join(dir, `leaf-${name}.key`))),
        chain: [der(`leaf-${name}`), der('issuing'), der('root')],
        leafPemFile: path.join(dir, `leaf-${name}.pem`),
      };
    },
    tlsServer() {
      selfSigned('tls-root', '/C=US/ST=Washington/O=Example Corp/CN=Example Internal TLS Root');
      issueFrom(
        'tls-root',
        'tls-server',
        '/C=US/ST=Washington/O=Example Corp/CN=127.0.0.1',
        'tls',
        ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
        30,
      );
      return {
        key: fs.readFileSync(path.join(dir, 'tls-server.key'), 'utf8'),
        cert: fs.readFileSync(path.join(dir, 'tls-server.pem'), 'utf8'),
        caFile: path.join(dir, 'tls-root.pem'),
      };
    },
  };
}
