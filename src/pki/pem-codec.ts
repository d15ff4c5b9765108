import { PkiError } from './pki-error';

export type PemLabel = 'CERTIFICATE' | 'CERTIFICATE REQUEST' | 'X509 CRL' | 'PUBLIC KEY';

export interface PemBlock {
  label: string;
  der: Buffer;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
const BASE64_BODY = /^[A-Za-z0-9+/=\s]*$/;

export function derToPem(der: Buffer, label: PemLabel): string {
  const body = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}

/**
 * Splits text into PEM blocks. Anything other than whitespace between blocks, or a body that
 * is not base64, is an error: a truststore file with stray content breaks Notation.
 */
export function parsePemBlocks(text: string, operation = 'parsePem'): PemBlock[] {
  const blocks: PemBlock[] = [];
  let last = 0;
  for (const match of text.matchAll(PEM_BLOCK)) {
    if (text.slice(last, match.index).trim() !== '') {
      throw new PkiError('VALIDATION_ERROR', `${operation}: unexpected text outside PEM blocks`, { field: 'pem' });
    }
    const body = match[2];
    if (!BASE64_BODY.test(body)) {
      throw new PkiError('INVALID_BASE64', `${operation}: PEM block '${match[1]}' is not base64`, { field: 'pem' });
    }
    blocks.push({ label: match[1], der: Buffer.from(body.replace(/\s+/g, ''), 'base64') });
    last = match.index + match[0].length;
  }
  if (text.slice(last).trim() !== '') {
    throw new PkiError('VALIDATION_ERROR', `${operation}: unexpected text outside PEM blocks`, { field: 'pem' });
  }
  return blocks;
}

/** One PEM block with the given label, or DER bytes passed through unchanged. */
export function pemOrDerToDer(input: string | Buffer, label: PemLabel, operation = 'pemToDer'): Buffer {
  if (Buffer.isBuffer(input)) {
    const text = input.subarray(0, 64).toString('latin1');
    if (!text.includes('-----BEGIN ')) return input;
    input = input.toString('utf8');
  }
  const blocks = parsePemBlocks(input, operation);
  if (blocks.length !== 1 || blocks[0].label !== label) {
    throw new PkiError('VALIDATION_ERROR', `${operation}: expected exactly one ${label} PEM block`, { field: 'pem' });
  }
  return blocks[0].der;
}
