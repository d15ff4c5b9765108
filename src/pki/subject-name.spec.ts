import * as asn1js from 'asn1js';
import { PkiError } from './pki-error';
import { oid, printableString, sequence, set, utf8String, ia5String } from './der-writer';
import {
  checkSubjectName,
  encodeSubjectName,
  notationTrustedIdentity,
  subjectToDn,
  validateSubject,
} from './subject-name';

function subjectError(fn: () => unknown): PkiError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PkiError);
    expect((error as PkiError).code).toBe('INVALID_SUBJECT');
    return error as PkiError;
  }
  throw new Error('expected INVALID_SUBJECT');
}

const valid = { C: 'US', ST: 'Washington', O: 'Acme Corp', OU: 'Release Engineering', CN: 'release-signer' };

describe(validateSubject.name, () => {
  it('accepts C, ST, O, optional OU and CN and returns them unchanged', () => {
    expect(validateSubject(valid)).toEqual(valid);
    const { OU: _omitted, ...withoutOu } = valid;
    expect(validateSubject(withoutOu)).toEqual(withoutOu);
  });

  it.each(['C', 'ST', 'O', 'CN'])('names the missing required field %s', (field) => {
    const input: Record<string, unknown> = { ...valid };
    delete input[field];
    const error = subjectError(() => validateSubject(input, 'createKey'));
    expect(error.details).toEqual({ field });
    expect(error.message).toBe(`createKey: subject '${field}' is required`);
  });

  it.each([
    [{ ...valid, emailAddress: 'a@b.c' }, 'emailAddress', /emailAddress is not allowed/],
    [{ ...valid, E: 'a@b.c' }, 'E', /not an allowed attribute/],
    [{ ...valid, L: 'Seattle' }, 'L', /not an allowed attribute/],
    [{ ...valid, '2.5.4.5': '123' }, '2.5.4.5', /not an allowed attribute/],
    [{ ...valid, O: ['Acme', 'Other'] }, 'O', /must appear once/],
    [{ ...valid, C: 'USA' }, 'C', /two-letter/],
    [{ ...valid, C: 'us' }, 'C', /two-letter/],
    [{ ...valid, C: '12' }, 'C', /two-letter/],
    [{ ...valid, ST: '' }, 'ST', /must not be empty/],
    [{ ...valid, O: ' Acme' }, 'O', /whitespace/],
    [{ ...valid, CN: 'a\nb' }, 'CN', /control or format characters/],
    [{ ...valid, CN: 'a\u0085b' }, 'CN', /control or format characters/], // C1 (NEL)
    [{ ...valid, CN: 'release\u202Eesaeler-dab' }, 'CN', /bidirectional/], // RIGHT-TO-LEFT OVERRIDE
    [{ ...valid, O: 'Acme\u2066Corp\u2069' }, 'O', /control or format characters/], // isolates
    [{ ...valid, OU: 'Bu\u200Dilds' }, 'OU', /control or format characters/], // zero-width joiner
    [{ ...valid, ST: 'Wash\u00ADington' }, 'ST', /control or format characters/], // soft hyphen
    [{ ...valid, CN: 'rel\uFEFFease' }, 'CN', /control or format characters/], // BOM
    [{ ...valid, CN: 'x'.repeat(65) }, 'CN', /at most 64/],
    [{ ...valid, ST: 42 }, 'ST', /must be a string/],
  ])('rejects %j naming %s', (input, field, message) => {
    const error = subjectError(() => validateSubject(input));
    expect(error.details?.field).toBe(field);
    expect(error.message).toMatch(message);
  });

  it('rejects non-objects', () => {
    expect(subjectError(() => validateSubject('C=US')).details?.field).toBe('subject');
    expect(subjectError(() => validateSubject(null)).details?.field).toBe('subject');
  });
});

describe(encodeSubjectName.name, () => {
  it('writes one single-valued RDN per attribute in C, ST, O, OU, CN order; C PrintableString, others UTF8String', () => {
    const der = encodeSubjectName({ ...valid, O: 'Ærø Ltd' });
    const parsed = asn1js.fromBER(new Uint8Array(der));
    expect(parsed.offset).toBe(der.length);
    const rdns = (parsed.result as asn1js.Sequence).valueBlock.value as asn1js.Set[];
    expect(rdns).toHaveLength(5);
    const decoded = rdns.map((rdn) => {
      expect(rdn.valueBlock.value).toHaveLength(1);
      const [type, value] = (rdn.valueBlock.value[0] as asn1js.Sequence).valueBlock.value;
      return [
        (type as asn1js.ObjectIdentifier).getValue(),
        value.constructor.name,
        (value as asn1js.Utf8String).valueBlock.value,
      ];
    });
    expect(decoded).toEqual([
      ['2.5.4.6', 'PrintableString', 'US'],
      ['2.5.4.8', 'Utf8String', 'Washington'],
      ['2.5.4.10', 'Utf8String', 'Ærø Ltd'],
      ['2.5.4.11', 'Utf8String', 'Release Engineering'],
      ['2.5.4.3', 'Utf8String', 'release-signer'],
    ]);
  });
});

describe(notationTrustedIdentity.name, () => {
  it('produces the x509.subject identity Notation trust policies use', () => {
    const { OU: _omitted, ...subject } = valid;
    expect(notationTrustedIdentity(subject)).toBe('x509.subject: C=US, ST=Washington, O=Acme Corp, CN=release-signer');
  });

  it('escapes RFC 4514 special characters', () => {
    expect(subjectToDn({ C: 'US', ST: 'WA', O: 'Acme, Inc.', CN: '#1 "signer" +x' })).toBe(
      'C=US, ST=WA, O=Acme\\, Inc., CN=\\#1 \\"signer\\" \\+x',
    );
  });
});

describe(checkSubjectName.name, () => {
  const rdn = (type: string, value: Buffer) => set(sequence(oid(type), value));

  it('returns the attributes of a conforming Name (L allowed for external certificates)', () => {
    const name = sequence(
      rdn('2.5.4.6', printableString('US')),
      rdn('2.5.4.8', utf8String('WA')),
      rdn('2.5.4.7', utf8String('Seattle')),
      rdn('2.5.4.10', utf8String('Acme')),
    );
    expect(checkSubjectName(name, 'op')).toEqual({ C: 'US', ST: 'WA', L: 'Seattle', O: 'Acme' });
  });

  it('refuses multi-valued RDNs, duplicates, emailAddress, unknown OIDs and missing C/ST/O', () => {
    const c = rdn('2.5.4.6', printableString('US'));
    const st = rdn('2.5.4.8', utf8String('WA'));
    const o = rdn('2.5.4.10', utf8String('Acme'));
    const multi = set(sequence(oid('2.5.4.10'), utf8String('Acme')), sequence(oid('2.5.4.3'), utf8String('x')));
    expect(subjectError(() => checkSubjectName(sequence(c, st, multi), 'op')).message).toMatch(/multi-valued/);
    expect(subjectError(() => checkSubjectName(sequence(c, st, o, o), 'op')).details?.field).toBe('O');
    expect(
      subjectError(() => checkSubjectName(sequence(c, st, o, rdn('1.2.840.113549.1.9.1', ia5String('a@b'))), 'op'))
        .details?.field,
    ).toBe('emailAddress');
    expect(
      subjectError(() => checkSubjectName(sequence(c, st, o, rdn('2.5.4.5', printableString('1'))), 'op')).details
        ?.field,
    ).toBe('2.5.4.5');
    expect(subjectError(() => checkSubjectName(sequence(c, o), 'op')).details?.field).toBe('ST');
    expect(subjectError(() => checkSubjectName(sequence(st, o), 'op')).details?.field).toBe('C');
    expect(subjectError(() => checkSubjectName(Buffer.from('3003020100', 'hex'), 'op')).details?.field).toBe('subject');
  });

  it('refuses bidirectional overrides and other control or format characters in an imported certificate subject, whatever the string type', () => {
    const c = rdn('2.5.4.6', printableString('US'));
    const st = rdn('2.5.4.8', utf8String('WA'));
    const o = rdn('2.5.4.10', utf8String('Acme'));
    expect(
      subjectError(() => checkSubjectName(sequence(c, st, o, rdn('2.5.4.3', utf8String('release\u202Eexe.'))), 'op'))
        .details?.field,
    ).toBe('CN');
    // BMPString, big-endian UTF-16: U+202E hidden in another encoding than UTF-8.
    const bmp = Buffer.from('evil\u202Ename', 'utf16le').swap16();
    expect(
      subjectError(() =>
        checkSubjectName(sequence(c, st, rdn('2.5.4.10', Buffer.concat([Buffer.from([0x1e, bmp.length]), bmp]))), 'op'),
      ).details?.field,
    ).toBe('O');
    expect(
      subjectError(() => checkSubjectName(sequence(c, st, o, rdn('2.5.4.11', utf8String('a\u0000b'))), 'op')).details
        ?.field,
    ).toBe('OU');
  });
});
