import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crlDates } from './crl-dates';

/** CRLs made by the OpenSSL CLI (a real, independent encoder), read back by the console's reader. */
function opensslCrl(days: number): { der: Uint8Array; lastUpdate: Date; nextUpdate: Date } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'console-crl-'));
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  fs.writeFileSync(path.join(dir, 'index.txt'), '');
  fs.writeFileSync(path.join(dir, 'crlnumber'), '01\n');
  fs.writeFileSync(path.join(dir, 'ca.cnf'), '[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\n');
  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-subj', '/CN=console test CA', '-days', '2');
  run('ca', '-gencrl', '-batch', '-config', 'ca.cnf', '-keyfile', 'key.pem', '-cert', 'cert.pem', '-crldays', String(days), '-out', 'crl.pem');
  run('crl', '-in', 'crl.pem', '-outform', 'DER', '-out', 'crl.der');
  const text = run('crl', '-inform', 'DER', '-in', 'crl.der', '-noout', '-lastupdate', '-nextupdate');
  const field = (name: string) => new Date(/=(.*)$/m.exec(text.split('\n').find((l) => l.startsWith(name))!)![1]);
  const result = { der: new Uint8Array(fs.readFileSync(path.join(dir, 'crl.der'))), lastUpdate: field('lastUpdate'), nextUpdate: field('nextUpdate') };
  fs.rmSync(dir, { recursive: true, force: true });
  return result;
}

describe('crlDates', () => {
  it('reads thisUpdate and nextUpdate (UTCTime) as openssl prints them', () => {
    const crl = opensslCrl(1);
    expect(crlDates(crl.der)).toEqual({ thisUpdate: crl.lastUpdate, nextUpdate: crl.nextUpdate });
  });

  it('reads a nextUpdate after 2049, which RFC 5280 encodes as GeneralizedTime', () => {
    const crl = opensslCrl(12_000);
    expect(crl.nextUpdate.getUTCFullYear()).toBeGreaterThan(2049);
    expect(crlDates(crl.der).nextUpdate).toEqual(crl.nextUpdate);
  });

  it('refuses bytes that are not a CRL instead of inventing dates', () => {
    expect(() => crlDates(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]))).toThrow(/CRL/);
    expect(() => crlDates(new Uint8Array([0x04, 0x00]))).toThrow(/not a SEQUENCE/);
  });
});
