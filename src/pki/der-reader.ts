/**
 * Minimal DER walker that hands back exact byte slices. Used where the original encoding must be
 * kept (issuer/subject names, SubjectPublicKeyInfo, the signed TBS part): re-encoding a parsed
 * object model is not guaranteed to reproduce the bytes another implementation signed.
 */
export interface DerElement {
  tag: number;
  /** The whole TLV. */
  raw: Buffer;
  /** The value octets. */
  content: Buffer;
}

export class DerParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerParseError';
  }
}

export function readElement(buffer: Buffer, offset = 0): DerElement {
  if (offset + 2 > buffer.length) throw new DerParseError('truncated element');
  const tag = buffer[offset];
  if ((tag & 0x1f) === 0x1f) throw new DerParseError('multi-octet tags are not supported');
  let length = buffer[offset + 1];
  let header = 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0) throw new DerParseError('indefinite length is not DER');
    if (count > 4) throw new DerParseError('length too large');
    if (offset + 2 + count > buffer.length) throw new DerParseError('truncated length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + buffer[offset + 2 + i];
    if (length < 0x80 || buffer[offset + 2] === 0) throw new DerParseError('non-minimal length');
    header += count;
  }
  const end = offset + header + length;
  if (end > buffer.length) throw new DerParseError('truncated content');
  return { tag, raw: buffer.subarray(offset, end), content: buffer.subarray(offset + header, end) };
}

/** Reads one element that must span the whole buffer. */
export function readSingle(buffer: Buffer, expectedTag?: number): DerElement {
  const element = readElement(buffer, 0);
  if (element.raw.length !== buffer.length) throw new DerParseError('trailing data after element');
  if (expectedTag !== undefined && element.tag !== expectedTag) {
    throw new DerParseError(`expected tag 0x${expectedTag.toString(16)}, found 0x${element.tag.toString(16)}`);
  }
  return element;
}

export function readChildren(element: DerElement): DerElement[] {
  const children: DerElement[] = [];
  for (let offset = 0; offset < element.content.length;) {
    const child = readElement(element.content, offset);
    children.push(child);
    offset += child.raw.length;
  }
  return children;
}

export function decodeOid(content: Buffer): string {
  const arcs: bigint[] = [];
  let value = 0n;
  for (const byte of content) {
    value = (value << 7n) | BigInt(byte & 0x7f);
    if (!(byte & 0x80)) {
      arcs.push(value);
      value = 0n;
    }
  }
  if (arcs.length === 0) throw new DerParseError('empty OID');
  const first = arcs[0] < 80n ? arcs[0] / 40n : 2n;
  return [first, arcs[0] - first * 40n, ...arcs.slice(1)].join('.');
}

/** The raw parts of an X.509 certificate, as encoded. */
export interface CertificateParts {
  /** 0 for v1 (field absent), 2 for v3. */
  version: number;
  tbs: Buffer;
  signatureAlgorithm: Buffer;
  signature: Buffer;
  /** INTEGER content octets of the serial number. */
  serialContent: Buffer;
  /** AlgorithmIdentifier inside the TBS (must equal signatureAlgorithm). */
  tbsSignatureAlgorithm: Buffer;
  issuer: Buffer;
  subject: Buffer;
  subjectPublicKeyInfo: Buffer;
}

export function readCertificateParts(der: Buffer): CertificateParts {
  const certificate = readSingle(der, 0x30);
  const [tbs, signatureAlgorithm, signature, ...rest] = readChildren(certificate);
  if (
    !tbs ||
    tbs.tag !== 0x30 ||
    !signatureAlgorithm ||
    signatureAlgorithm.tag !== 0x30 ||
    !signature ||
    signature.tag !== 0x03 ||
    rest.length
  ) {
    throw new DerParseError('not an X.509 certificate');
  }
  const fields = readChildren(tbs);
  let version = 0;
  let index = 0;
  if (fields[0]?.tag === 0xa0) {
    const integer = readSingle(fields[0].content, 0x02);
    if (integer.content.length !== 1) throw new DerParseError('malformed version');
    version = integer.content[0];
    index = 1;
  }
  const [serial, tbsAlg, issuer, validity, subject, spki] = fields.slice(index, index + 6);
  index += 6;
  if (
    !spki ||
    serial.tag !== 0x02 ||
    tbsAlg.tag !== 0x30 ||
    issuer.tag !== 0x30 ||
    validity.tag !== 0x30 ||
    subject.tag !== 0x30 ||
    spki.tag !== 0x30
  ) {
    throw new DerParseError('malformed TBSCertificate');
  }
  if (signature.content[0] !== 0) throw new DerParseError('signature BIT STRING has unused bits');
  return {
    version,
    tbs: tbs.raw,
    signatureAlgorithm: signatureAlgorithm.raw,
    signature: signature.content.subarray(1),
    serialContent: serial.content,
    tbsSignatureAlgorithm: tbsAlg.raw,
    issuer: issuer.raw,
    subject: subject.raw,
    subjectPublicKeyInfo: spki.raw,
  };
}

/** SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING } — the shape of certificates, CRLs and CSRs. */
export function readSignedParts(der: Buffer): { tbs: Buffer; signatureAlgorithm: Buffer; signature: Buffer } {
  const outer = readSingle(der, 0x30);
  const [tbs, signatureAlgorithm, signature, ...rest] = readChildren(outer);
  if (
    !tbs ||
    tbs.tag !== 0x30 ||
    !signatureAlgorithm ||
    signatureAlgorithm.tag !== 0x30 ||
    !signature ||
    signature.tag !== 0x03 ||
    rest.length
  ) {
    throw new DerParseError('not a signed structure');
  }
  if (signature.content[0] !== 0) throw new DerParseError('signature BIT STRING has unused bits');
  return { tbs: tbs.raw, signatureAlgorithm: signatureAlgorithm.raw, signature: signature.content.subarray(1) };
}
