import { DomainError, ErrorCode } from '../common/errors';
import { CaIssuer } from './certificate-issuer';
import { EXTENSION_OIDS } from './certificate-profiles';
import {
  bitString,
  enumerated,
  explicit,
  extension,
  generalizedTime,
  implicitPrimitive,
  sequence,
  smallInteger,
  tlv,
  tlvOf,
  x509Time,
} from './der-writer';
import { REASON_CODES, RevocationReason, isRevocationReason } from './revocation-reasons';
import { serialHexToIntegerContent } from './serial-number';
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
 * Builds and signs a v2 CRL by assembling DER directly: each revoked entry is encoded to bytes as
 * soon as it is read, so 100,000 entries cost one small buffer each plus one hash pass.
 */
export async function buildCrl(params: BuildCrlParams): Promise<BuiltCrl> {
  const operation = 'buildCrl';
  const { issuer } = params;
  const thisUpdate = wholeSeconds(params.thisUpdate ?? new Date());
  const nextUpdate = wholeSeconds(params.nextUpdate);
  if (!(nextUpdate > thisUpdate)) {
    throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'nextUpdate' must be after 'thisUpdate'`, { field: 'nextUpdate' });
  }
  const crlNumber = BigInt(params.crlNumber);
  if (crlNumber < 0n || crlNumber > MAX_CRL_NUMBER) {
    throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'crlNumber' must be a non-negative integer of at most 20 octets`, {
      field: 'crlNumber',
    });
  }

  const encodedEntries: Buffer[] = [];
  const seen = new Set<string>();
  let index = 0;
  for await (const entry of params.entries) {
    encodedEntries.push(encodeEntry(entry, index, seen, operation));
    index++;
  }

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
    ...(encodedEntries.length ? [tlvOf(0x30, encodedEntries)] : []),
    crlExtensions,
  ];
  const tbs = tlvOf(0x30, tbsParts);
  const signature = await signTbs(issuer.signer, issuer.scheme, tbs);
  // A faulty signer must never publish a CRL that verifiers reject.
  const algorithm = describeSignatureAlgorithm(issuer.scheme.algorithmIdentifier)!;
  if (!verifySignature(issuer.publicKeySpki, algorithm, tbs, signature)) {
    throw new DomainError(ErrorCode.INTERNAL, `${operation}: CRL signature does not verify with the issuer key`, { field: 'signature' });
  }
  const der = tlv(0x30, tbs, issuer.scheme.algorithmIdentifier, bitString(signature));
  if (der.length > MAX_CRL_BYTES) {
    throw new DomainError(ErrorCode.INTERNAL, `${operation}: CRL is ${der.length} bytes, above Notation's 32 MiB limit`, { field: 'entries' });
  }
  return { der, entryCount: encodedEntries.length, crlNumber, thisUpdate, nextUpdate };
}

function encodeEntry(entry: CrlEntry, index: number, seen: Set<string>, operation: string): Buffer {
  const field = (name: string): string => `entries[${index}].${name}`;
  let serialContent: Buffer;
  try {
    serialContent = serialHexToIntegerContent(entry.serialHex);
  } catch {
    throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: '${field('serialHex')}' is not a hex serial`, { field: field('serialHex') });
  }
  const key = serialContent.toString('hex');
  if (seen.has(key)) {
    throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: serial ${entry.serialHex} is listed twice`, { field: field('serialHex') });
  }
  seen.add(key);
  if (!(entry.revokedAt instanceof Date) || Number.isNaN(entry.revokedAt.getTime())) {
    throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: '${field('revokedAt')}' must be a date`, { field: field('revokedAt') });
  }
  const extensions: Buffer[] = [];
  if (entry.reason !== undefined && entry.reason !== 'unspecified') {
    if (!isRevocationReason(entry.reason)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: '${field('reason')}' is not a revocation reason`, { field: field('reason') });
    }
    extensions.push(reasonCodeExtension(REASON_CODES[entry.reason]));
  }
  if (entry.invalidityDate !== undefined) {
    if (!(entry.invalidityDate instanceof Date) || Number.isNaN(entry.invalidityDate.getTime())) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: '${field('invalidityDate')}' must be a date`, {
        field: field('invalidityDate'),
      });
    }
    extensions.push(extension(EXTENSION_OIDS.invalidityDate, false, generalizedTime(entry.invalidityDate)));
  }
  const parts = [tlv(0x02, serialContent), x509Time(entry.revokedAt)];
  if (extensions.length) parts.push(tlv(0x30, ...extensions));
  return tlv(0x30, ...parts);
}

function wholeSeconds(date: Date): Date {
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) {
    throw new DomainError(ErrorCode.VALIDATION_ERROR, 'buildCrl: thisUpdate/nextUpdate must be dates', { field: 'nextUpdate' });
  }
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}
