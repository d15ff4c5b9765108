import { PkiError } from './pki-error';
import { DerParseError, decodeOid, readChildren, readSingle } from './der-reader';
import { oid, printableString, sequence, set, utf8String } from './der-writer';

/**
 * Certificate subjects. Notation trusted identities (`x509.subject: C=..,ST=..,O=..,CN=..`) need
 * C, ST and O, each attribute once and single-valued RDNs; keeping the subject of a signing key
 * identical across rotations keeps trust policies matching.
 */
export interface CertificateSubject {
  C: string;
  ST: string;
  O: string;
  OU?: string;
  CN: string;
}

type SubjectField = keyof CertificateSubject;

export const NAME_ATTRIBUTE_OIDS = {
  C: '2.5.4.6',
  ST: '2.5.4.8',
  L: '2.5.4.7',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  CN: '2.5.4.3',
} as const;

const SHORT_NAME_BY_OID: Record<string, string> = Object.fromEntries(
  Object.entries(NAME_ATTRIBUTE_OIDS).map(([name, id]) => [id, name]),
);
const EMAIL_ADDRESS_OID = '1.2.840.113549.1.9.1';

/** Order of RDNs in issued certificates (most general first) and in DN strings. */
const FIELD_ORDER: readonly SubjectField[] = ['C', 'ST', 'O', 'OU', 'CN'];
const REQUIRED: readonly SubjectField[] = ['C', 'ST', 'O', 'CN'];
/** RFC 5280 Appendix A upper bounds. */
const MAX_LENGTH: Record<SubjectField, number> = { C: 2, ST: 128, O: 64, OU: 64, CN: 64 };

function invalid(operation: string, field: string, message: string): PkiError {
  return new PkiError('INVALID_SUBJECT', `${operation}: subject '${field}' ${message}`, { field });
}

/** Validates the API's `{C, ST, O, OU?, CN}` subject. Throws 400 INVALID_SUBJECT naming the field. */
export function validateSubject(input: unknown, operation = 'validateSubject'): CertificateSubject {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw invalid(operation, 'subject', 'must be an object {C, ST, O, OU?, CN}');
  }
  const record = input as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!(FIELD_ORDER as readonly string[]).includes(key)) {
      const hint = /^(e|email|emailaddress)$/i.test(key)
        ? ' (emailAddress is not allowed in code-signing subjects)'
        : '';
      throw invalid(operation, key, `is not an allowed attribute; use only C, ST, O, OU, CN${hint}`);
    }
  }
  const subject: Partial<CertificateSubject> = {};
  for (const field of FIELD_ORDER) {
    const value = record[field];
    if (value === undefined || value === null) {
      if (REQUIRED.includes(field)) throw invalid(operation, field, 'is required');
      continue;
    }
    if (Array.isArray(value))
      throw invalid(operation, field, 'must appear once (multi-valued attributes are not allowed)');
    if (typeof value !== 'string') throw invalid(operation, field, 'must be a string');
    if (value.length === 0) throw invalid(operation, field, 'must not be empty');
    if (value.trim() !== value) throw invalid(operation, field, 'must not start or end with whitespace');
    if (hasControlCharacter(value))
      throw invalid(
        operation,
        field,
        'must not contain control or format characters (such as bidirectional overrides)',
      );
    if (field === 'C' && !/^[A-Z]{2}$/.test(value)) {
      throw invalid(operation, field, 'must be a two-letter upper-case ISO 3166 country code');
    }
    if (value.length > MAX_LENGTH[field])
      throw invalid(operation, field, `must be at most ${MAX_LENGTH[field]} characters`);
    subject[field] = value;
  }
  return subject as CertificateSubject;
}

/**
 * C0 and C1 controls (Cc, DEL included) and format characters (Cf: bidirectional overrides and
 * isolates such as U+202E, zero-width joiners, soft hyphens, the BOM). A subject is what people
 * and trust policies compare; these make it display as something it is not ("CN=release\u202Eesaeler-dab").
 */
const CONTROL_OR_FORMAT = /[\p{Cc}\p{Cf}]/u;

function hasControlCharacter(value: string): boolean {
  return CONTROL_OR_FORMAT.test(value);
}

/** DER Name: one single-valued RDN per attribute; C as PrintableString, the rest UTF8String (RFC 5280). */
export function encodeSubjectName(subject: CertificateSubject): Buffer {
  const rdns: Buffer[] = [];
  for (const field of FIELD_ORDER) {
    const value = subject[field];
    if (value === undefined) continue;
    const encoded = field === 'C' ? printableString(value) : utf8String(value);
    rdns.push(set(sequence(oid(NAME_ATTRIBUTE_OIDS[field]), encoded)));
  }
  return sequence(...rdns);
}

/** RFC 4514 escaping, which Notation's DN parser (go-ldap ParseDN) understands. */
function escapeDnValue(value: string): string {
  let escaped = value.replace(/[\\,+"<>;=]/g, (c) => '\\' + c);
  if (escaped.startsWith('#') || escaped.startsWith(' ')) escaped = '\\' + escaped;
  if (escaped.endsWith(' ')) escaped = escaped.slice(0, -1) + '\\ ';
  return escaped;
}

/** "C=US, ST=WA, O=Acme, OU=Builds, CN=release" — the order and form Notation's docs use. */
export function subjectToDn(subject: CertificateSubject): string {
  return FIELD_ORDER.filter((field) => subject[field] !== undefined)
    .map((field) => `${field}=${escapeDnValue(subject[field]!)}`)
    .join(', ');
}

/** The trust policy `trustedIdentities` entry matching certificates with this subject. */
export function notationTrustedIdentity(subject: CertificateSubject): string {
  return `x509.subject: ${subjectToDn(subject)}`;
}

export interface NameAttribute {
  oid: string;
  /** C, ST, L, O, OU, CN, or undefined for other types. */
  shortName?: string;
  value: string;
}

/** Decodes a DER Name into its RDNs (each an array of attributes), keeping order. */
export function decodeName(nameDer: Buffer): NameAttribute[][] {
  const rdns: NameAttribute[][] = [];
  for (const rdn of readChildren(readSingle(nameDer, 0x30))) {
    if (rdn.tag !== 0x31) throw new DerParseError('RDN is not a SET');
    const attributes: NameAttribute[] = [];
    for (const atv of readChildren(rdn)) {
      const [type, value] = readChildren(atv);
      if (atv.tag !== 0x30 || !type || type.tag !== 0x06 || !value)
        throw new DerParseError('malformed AttributeTypeAndValue');
      const id = decodeOid(type.content);
      attributes.push({
        oid: id,
        shortName: SHORT_NAME_BY_OID[id],
        value: decodeDirectoryString(value.tag, value.content),
      });
    }
    rdns.push(attributes);
  }
  return rdns;
}

function decodeDirectoryString(tag: number, content: Buffer): string {
  switch (tag) {
    case 0x0c: // UTF8String
      return content.toString('utf8');
    case 0x13: // PrintableString
    case 0x16: // IA5String
      return content.toString('latin1');
    case 0x14: // TeletexString (treated as Latin-1, like most implementations)
      return content.toString('latin1');
    case 0x1e: // BMPString
      return Buffer.from(content).swap16().toString('utf16le'); // copy: swap16 works in place
    case 0x1c: {
      // UniversalString
      let text = '';
      for (let i = 0; i + 3 < content.length; i += 4) text += String.fromCodePoint(content.readUInt32BE(i));
      return text;
    }
    default:
      return '#' + content.toString('hex');
  }
}

/**
 * Checks a certificate's subject Name against the Notation rules and returns its attributes.
 * Unlike `validateSubject` this accepts L (common in externally issued certificates).
 */
export function checkSubjectName(
  nameDer: Buffer,
  operation: string,
  details: Record<string, unknown> = {},
): Record<string, string> {
  let rdns: NameAttribute[][];
  try {
    rdns = decodeName(nameDer);
  } catch (error) {
    throw new PkiError('INVALID_SUBJECT', `${operation}: subject is not a valid Name (${(error as Error).message})`, {
      ...details,
      field: 'subject',
    });
  }
  const seen: Record<string, string> = {};
  for (const rdn of rdns) {
    if (rdn.length !== 1) {
      throw new PkiError('INVALID_SUBJECT', `${operation}: subject has a multi-valued RDN`, {
        ...details,
        field: 'subject',
      });
    }
    const [attribute] = rdn;
    if (attribute.oid === EMAIL_ADDRESS_OID) {
      throw new PkiError('INVALID_SUBJECT', `${operation}: subject must not contain emailAddress`, {
        ...details,
        field: 'emailAddress',
      });
    }
    if (!attribute.shortName) {
      throw new PkiError('INVALID_SUBJECT', `${operation}: subject attribute ${attribute.oid} is not allowed`, {
        ...details,
        field: attribute.oid,
      });
    }
    if (attribute.shortName in seen) {
      throw new PkiError('INVALID_SUBJECT', `${operation}: subject '${attribute.shortName}' appears more than once`, {
        ...details,
        field: attribute.shortName,
      });
    }
    if (hasControlCharacter(attribute.value)) {
      throw new PkiError(
        'INVALID_SUBJECT',
        `${operation}: subject '${attribute.shortName}' contains control or format characters (such as bidirectional overrides)`,
        {
          ...details,
          field: attribute.shortName,
        },
      );
    }
    seen[attribute.shortName] = attribute.value;
  }
  for (const field of ['C', 'ST', 'O'] as const) {
    if (!seen[field]) {
      throw new PkiError('INVALID_SUBJECT', `${operation}: subject '${field}' is required`, { ...details, field });
    }
  }
  if (!/^[A-Za-z]{2}$/.test(seen.C)) {
    throw new PkiError('INVALID_SUBJECT', `${operation}: subject 'C' must be a two-letter country code`, {
      ...details,
      field: 'C',
    });
  }
  return seen;
}
