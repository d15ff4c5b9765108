import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import {
  OcspCertStatus,
  createOcspResponder,
  ocspResponseForError,
  parseOcspRequest,
  respondToOcspRequest,
} from '../../src/pki/ocsp-responder';
import { KeySpec } from '../../src/pki/key-spec';
import { TestHierarchy, createHierarchy, issueLeaf, openssl, tempDir } from './ca-fixtures';

/**
 * No server runs here: OpenSSL writes the requests (-reqout), the responder core answers them and
 * OpenSSL checks the answers (-respin) against the root.
 */
describe('OCSP responses checked by the OpenSSL CLI', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  function nonceOf(text: string): string | undefined {
    return /OCSP Nonce: ?\s*\n\s*([0-9A-F]+)/.exec(text)?.[1];
  }

  describe.each<KeySpec>(['EC-384', 'RSA-3072'])('%s CA hierarchy', (caSpec) => {
    let h: TestHierarchy;
    let leafFile: string;
    let leafSerial: string;
    let rootFile: string;
    let issuingFile: string;
    let n = 0;

    beforeAll(async () => {
      h = await createHierarchy(caSpec);
      const { leaf } = await issueLeaf(h.issuingIssuer, 'EC-256');
      leafSerial = leaf.serialHex;
      leafFile = tmp.file(`${caSpec}-leaf.pem`, leaf.pem);
      rootFile = tmp.file(`${caSpec}-root.pem`, h.root.pem);
      issuingFile = tmp.file(`${caSpec}-issuing.pem`, h.issuing.pem);
    });

    /** openssl ocsp -reqout → responder → openssl ocsp -respin; returns OpenSSL's verdict and texts. */
    async function roundTrip(requestArgs: string[], answer: OcspCertStatus, issuer = h.issuingIssuer) {
      const id = `${caSpec}-${++n}`;
      const reqFile = tmp.file(`${id}-req.der`);
      const made = await openssl([
        'ocsp',
        ...requestArgs,
        '-issuer',
        issuingFile,
        '-cert',
        leafFile,
        '-reqout',
        reqFile,
      ]);
      expect(made.code).toBe(0);
      const requestText = (await openssl(['ocsp', '-reqin', reqFile, '-req_text'])).stdout;
      const asked: string[] = [];
      const response = await respondToOcspRequest(createOcspResponder(issuer), fs.readFileSync(reqFile), (serial) => {
        asked.push(serial);
        return answer;
      });
      const respFile = tmp.file(`${id}-resp.der`, response);
      const hashArgs = requestArgs.filter((arg) => arg === '-sha256');
      // -no_nonce here: the checking invocation builds a fresh request whose nonce would never match.
      const checked = await openssl([
        'ocsp',
        '-respin',
        respFile,
        '-CAfile',
        rootFile,
        '-issuer',
        issuingFile,
        ...hashArgs,
        '-cert',
        leafFile,
        '-no_nonce',
        '-resp_text',
      ]);
      return { checked, requestText, asked, response };
    }

    it('answers good for a SHA-1 CertID, echoing the nonce; OpenSSL verifies the response against the root', async () => {
      const { checked, requestText, asked, response } = await roundTrip([], { status: 'good' });
      expect(asked).toEqual([leafSerial]);
      expect(checked.code).toBe(0);
      expect(checked.stderr).toMatch(/Response verify OK/);
      expect(checked.stdout).toContain(`${leafFile}: good`);
      expect(checked.stdout).toMatch(/Hash Algorithm: sha1/);
      expect(checked.stdout).toMatch(/Next Update:/);
      const requestNonce = nonceOf(requestText);
      expect(requestNonce).toBeDefined();
      expect(nonceOf(checked.stdout)).toBe(requestNonce);
      expect(response.length).toBeLessThan(20 * 1024);
      expect(checked.stdout).toMatch(
        caSpec.startsWith('RSA')
          ? /Signature Algorithm: sha384WithRSAEncryption/
          : /Signature Algorithm: ecdsa-with-SHA384/,
      );
    });

    it('answers revoked with time and reason', async () => {
      const revokedAt = new Date('2030-05-06T07:08:09Z');
      const { checked } = await roundTrip([], { status: 'revoked', revokedAt, reason: 'keyCompromise' });
      expect(checked.code).toBe(0);
      expect(checked.stderr).toMatch(/Response verify OK/);
      expect(checked.stdout).toContain(`${leafFile}: revoked`);
      expect(checked.stdout).toMatch(/Reason: keyCompromise/);
      expect(checked.stdout).toMatch(/Revocation Time: May {2}6 07:08:09 2030 GMT/);
    });

    it('accepts SHA-256 CertIDs and requests without a nonce', async () => {
      const { checked, requestText } = await roundTrip(['-sha256', '-no_nonce'], { status: 'good' });
      expect(nonceOf(requestText)).toBeUndefined();
      expect(checked.code).toBe(0);
      expect(checked.stdout).toMatch(/Hash Algorithm: sha256/);
      expect(checked.stdout).toContain(`${leafFile}: good`);
      expect(checked.stdout).not.toMatch(/OCSP Nonce/);
    });

    it('is rejected by OpenSSL when checked against a foreign root (the check can fail)', async () => {
      const other = await createHierarchy('EC-256');
      const reqFile = tmp.file(`${caSpec}-foreign-req.der`);
      await openssl(['ocsp', '-issuer', issuingFile, '-cert', leafFile, '-reqout', reqFile]);
      const response = await respondToOcspRequest(
        createOcspResponder(h.issuingIssuer),
        fs.readFileSync(reqFile),
        () => ({ status: 'good' }),
      );
      const checked = await openssl([
        'ocsp',
        '-respin',
        tmp.file(`${caSpec}-foreign-resp.der`, response),
        '-CAfile',
        tmp.file(`${caSpec}-foreign-root.pem`, other.root.pem),
        '-issuer',
        tmp.file(`${caSpec}-foreign-iss.pem`, other.issuing.pem),
        '-cert',
        leafFile,
        '-no_nonce',
      ]);
      expect(checked.stderr).not.toMatch(/Response verify OK/);
    });
  });

  it('answers random bytes with malformedRequest and a foreign CertID with unauthorized', async () => {
    const h = await createHierarchy('EC-256');
    let malformed: Buffer | undefined;
    try {
      parseOcspRequest(crypto.randomBytes(200));
    } catch (error) {
      malformed = ocspResponseForError(error);
    }
    const malformedText = await openssl([
      'ocsp',
      '-respin',
      tmp.file('malformed.der', malformed!),
      '-resp_text',
      '-noverify',
    ]);
    expect(malformedText.stdout + malformedText.stderr).toMatch(/Responder Error: malformedrequest \(1\)/);

    // The issuing CA certificate is the root's to answer for, not the issuing CA's.
    const reqFile = tmp.file('foreign-req.der');
    await openssl([
      'ocsp',
      '-issuer',
      tmp.file('u-root.pem', h.root.pem),
      '-cert',
      tmp.file('u-issuing.pem', h.issuing.pem),
      '-reqout',
      reqFile,
    ]);
    const response = await respondToOcspRequest(createOcspResponder(h.issuingIssuer), fs.readFileSync(reqFile), () => ({
      status: 'good',
    }));
    const text = await openssl(['ocsp', '-respin', tmp.file('unauthorized.der', response), '-resp_text', '-noverify']);
    expect(text.stdout + text.stderr).toMatch(/Responder Error: unauthorized \(6\)/);

    // …and the root generation answers it; OpenSSL verifies that response too.
    const rootAnswer = await respondToOcspRequest(createOcspResponder(h.rootIssuer), fs.readFileSync(reqFile), () => ({
      status: 'good',
    }));
    const checked = await openssl([
      'ocsp',
      '-respin',
      tmp.file('root-answer.der', rootAnswer),
      '-CAfile',
      tmp.file('u-root2.pem', h.root.pem),
      '-issuer',
      tmp.file('u-root3.pem', h.root.pem),
      '-cert',
      tmp.file('u-issuing2.pem', h.issuing.pem),
      '-no_nonce',
    ]);
    expect(checked.code).toBe(0);
    expect(checked.stdout).toMatch(/: good/);
  });
});
