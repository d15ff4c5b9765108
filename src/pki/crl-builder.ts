import { PkiError } from './pki-error';
import { CaIssuer } from './certificate-issuer';
import { EXTENSION_OIDS } from './certificate-profiles';
import {
  bitString,
  enumerated,
  explicit,
  extension,
  implicitPrimitive,
  sequence,
  smallInteger,
  tlv,
  tlvOf,
  x509Time,
} from './der-writer';
import { REASON_CODES, RevocationReason, isRevocationReason } from './revocation-reasons';
import { normalizeSerialHex } from './serial-number';
import { describeSignatureAlgorithm, signTbs, verifySignature } from './signature-algorithms';

export interface CrlEntry {
  /** Serial in any accepted hex form (see serial-number.ts). */
  serialHex: string;
  revokedAt: Date;
  /** Omitted from the CRL when 'unspecified' or absent (RFC 5280 §5.3.1). */
  reason?: RevocationReason;
  invalidityDate?: Date;
}

export interface BuildCrlParams {
  issuer: CaIssuer;
  /** Monotonic per CA generation; the caller persists it. */
  crlNumber: bigint | number;
  /** Defaults to now. */
  thisUpdate?: Date;
  nextUpdate: Date;
  /** May be a database cursor: entries are encoded as they arrive, never held as objects. */
  entries: Iterable<CrlEntry> | AsyncIterable<CrlEntry>;
}

export interface BuiltCrl {
  der: Buffer;
  entryCount: number;
  crlNumber: bigint;
  thisUpdate: Date;
  nextUpdate: Date;
}

/** Notation refuses CRLs above 32 MiB. */
export const MAX_CRL_BYTES = 32 * 1024 * 1024;
/** cRLNumber is at most 20 octets (RFC 5280 §5.2.3). */
const MAX_CRL_NUMBER = (1n << 159n) - 1n;

const reasonExtensionCache = new Map<number, Buffer>();
function reasonCodeExtension(code: number): Buffer {
  let encoded = reasonExtensionCache.get(code);
  if (!encoded) {
    encoded = extension(EXTENSION_OIDS.reasonCode, false, enumerated(code));
    reasonExtensionCache.set(code, encoded);
  }
  return encoded;
}

/**
 * Builds and signs a v2 CRL by assembling DER directly: each revoked entry is written as bytes as
 * soon as it is read (entries may come from a database cursor and are never held as objects).
 */
export async function buildCrl(params: BuildCrlParams): Promise<BuiltCrl> {
  const operation = 'buildCrl';
  const { issuer } = params;
  const thisUpdate = wholeSeconds(params.thisUpdate ?? new Date());
  const nextUpdate = wholeSeconds(params.nextUpdate);
  if (!(nextUpdate > thisUpdate)) {
    throw new PkiError('VALIDATION_ERROR', `${operation}: 'nextUpdate' must be after 'thisUpdate'`, {
      field: 'nextUpdate',
    });
  }
  const crlNumber = BigInt(params.crlNumber);
  if (crlNumber < 0n || crlNumber > MAX_CRL_NUMBER) {
    throw new PkiError(
      'VALIDATION_ERROR',
      `${operation}: 'crlNumber' must be a non-negative integer of at most 20 octets`,
      {
        field: 'crlNumber',
      },
    );
  }

  const writer = new EntryWriter();
  const seen = new Set<string>();
  let entryCount = 0;
  for await (const entry of params.entries) {
    writeEntry(writer, entry, entryCount, seen, operation);
    entryCount++;
  }
  const encodedEntries = writer.finish();

  const crlExtensions = explicit(
    0,
    sequence(
      extension(EXTENSION_OIDS.authorityKeyIdentifier, false, sequence(implicitPrimitive(0, issuer.keyIdentifier))),
      extension(EXTENSION_OIDS.cRLNumber, false, smallInteger(crlNumber)),
    ),
  );
  const tbsParts = [
    smallInteger(1), // v2
    issuer.scheme.algorithmIdentifier,
    issuer.subjectName,
    x509Time(thisUpdate),
    x509Time(nextUpdate),
    // revokedCertificates is omitted entirely when empty (RFC 5280 §5.1.2.6).
    ...(entryCount ? [tlvOf(0x30, encodedEntries)] : []),
    crlExtensions,
  ];
  const tbs = tlvOf(0x30, tbsParts);
  const signature = await signTbs(issuer.signer, issuer.scheme, tbs);
  // A faulty signer must never publish a CRL that verifiers reject.
  const algorithm = describeSignatureAlgorithm(issuer.scheme.algorithmIdentifier)!;
  if (!verifySignature(issuer.publicKeySpki, algorithm, tbs, signature)) {
    throw new PkiError('INTERNAL', `${operation}: CRL signature does not verify with the issuer key`, {
      field: 'signature',
    });
  }
  const der = tlv(0x30, tbs, issuer.scheme.algorithmIdentifier, bitString(signature));
  if (der.length > MAX_CRL_BYTES) {
    throw new PkiError('INTERNAL', `${operation}: CRL is ${der.length} bytes, above Notation's 32 MiB limit`, {
      field: 'entries',
    });
  }
  return { der, entryCount, crlNumber, thisUpdate, nextUpdate };
}

/**
 * Appends encoded entries to large chunks, so 100,000 entries make a few dozen allocations rather
 * than several per entry. Each entry is at most 2 + 23 (serial) + 17 (time) + 2 + 12 (reasonCode)
 * + 26 (invalidityDate) = 82 octets, so every length inside it is a single octet.
 */
class EntryWriter {
  private static readonly CHUNK = 256 * 1024;
  private readonly chunks: Buffer[] = [];
  private buffer = Buffer.allocUnsafe(EntryWriter.CHUNK);
  offset = 0;

  get current(): Buffer {
    return this.buffer;
  }

  reserve(bytes: number): void {
    if (this.offset + bytes <= this.buffer.length) return;
    this.chunks.push(this.buffer.subarray(0, this.offset));
    this.buffer = Buffer.allocUnsafe(EntryWriter.CHUNK);
    this.offset = 0;
  }

  byte(value: number): void {
    this.buffer[this.offset++] = value;
  }

  bytes(value: Buffer): void {
    this.offset += value.copy(this.buffer, this.offset);
  }

  /** Two ASCII digits. */
  digits2(value: number): void {
    this.buffer[this.offset++] = 0x30 + Math.floor(value / 10);
    this.buffer[this.offset++] = 0x30 + (value % 10);
  }

  /** UTCTime (before 2050) or GeneralizedTime, whole seconds, like x509Time/generalizedTime. */
  time(date: Date, generalized: boolean): void {
    const year = date.getUTCFullYear();
    if (generalized || year < 1950 || year >= 2050) {
      this.byte(0x18);
      this.byte(15);
      this.digits2(Math.floor(year / 100));
    } else {
      this.byte(0x17);
      this.byte(13);
    }
    this.digits2(year % 100);
    this.digits2(date.getUTCMonth() + 1);
    this.digits2(date.getUTCDate());
    this.digits2(date.getUTCHours());
    this.digits2(date.getUTCMinutes());
    this.digits2(date.getUTCSeconds());
    this.byte(0x5a); // Z
  }

  finish(): Buffer[] {
    if (this.offset > 0) this.chunks.push(this.buffer.subarray(0, this.offset));
    return this.chunks;
  }
}

const MAX_ENTRY_OCTETS = 96;
/** SEQUENCE { OID invalidityDate, OCTET STRING { GeneralizedTime } } up to the time itself. */
const INVALIDITY_DATE_PREFIX = Buffer.from('30180603551d180411', 'hex');

function writeEntry(writer: EntryWriter, entry: CrlEntry, index: number, seen: Set<string>, operation: string): void {
  const field = (name: string): string => `entries[${index}].${name}`;
  let serial: string;
  try {
    serial = normalizeSerialHex(entry.serialHex);
  } catch {
    throw new PkiError('VALIDATION_ERROR', `${operation}: '${field('serialHex')}' is not a hex serial`, {
      field: field('serialHex'),
    });
  }
  if (seen.has(serial)) {
    throw new PkiError('VALIDATION_ERROR', `${operation}: serial ${entry.serialHex} is listed twice`, {
      field: field('serialHex'),
    });
  }
  seen.add(serial);
  if (!(entry.revokedAt instanceof Date) || Number.isNaN(entry.revokedAt.getTime())) {
    throw new PkiError('VALIDATION_ERROR', `${operation}: '${field('revokedAt')}' must be a date`, {
      field: field('revokedAt'),
    });
  }
  let reasonExtension: Buffer | undefined;
  if (entry.reason !== undefined && entry.reason !== 'unspecified') {
    if (!isRevocationReason(entry.reason)) {
      throw new PkiError('VALIDATION_ERROR', `${operation}: '${field('reason')}' is not a revocation reason`, {
        field: field('reason'),
      });
    }
    reasonExtension = reasonCodeExtension(REASON_CODES[entry.reason]);
  }
  const invalidityDate = entry.invalidityDate;
  if (invalidityDate !== undefined && (!(invalidityDate instanceof Date) || Number.isNaN(invalidityDate.getTime()))) {
    throw new PkiError('VALIDATION_ERROR', `${operation}: '${field('invalidityDate')}' must be a date`, {
      field: field('invalidityDate'),
    });
  }

  writer.reserve(MAX_ENTRY_OCTETS);
  const start = writer.offset;
  writer.byte(0x30);
  writer.byte(0); // entry length, patched below
  // userCertificate INTEGER: magnitude octets, with a 00 octet when the top bit is set.
  const even = serial.length % 2 ? '0' + serial : serial;
  const padded = even.charCodeAt(0) >= 0x38; // first hex digit 8..f
  writer.byte(0x02);
  writer.byte(even.length / 2 + (padded ? 1 : 0));
  if (padded) writer.byte(0);
  writer.offset += writer.current.write(even, writer.offset, 'hex');
  writer.time(entry.revokedAt, false);
  if (reasonExtension || invalidityDate) {
    writer.byte(0x30);
    writer.byte((reasonExtension?.length ?? 0) + (invalidityDate ? INVALIDITY_DATE_PREFIX.length + 17 : 0));
    if (reasonExtension) writer.bytes(reasonExtension);
    if (invalidityDate) {
      writer.bytes(INVALIDITY_DATE_PREFIX);
      writer.time(invalidityDate, true); // invalidityDate is always GeneralizedTime (RFC 5280 §5.3.2)
    }
  }
  writer.current[start + 1] = writer.offset - start - 2;
}

function wholeSeconds(date: Date): Date {
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) {
    throw new PkiError('VALIDATION_ERROR', 'buildCrl: thisUpdate/nextUpdate must be dates', { field: 'nextUpdate' });
  }
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}
