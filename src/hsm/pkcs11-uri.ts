import { DomainError, ErrorCode } from '../common/errors';

/**
 * RFC 7512 PKCS#11 URIs, the only form in which key references leave the hsm module
 * (object handles are per process and per login, so they are never stored).
 */
export interface Pkcs11KeyRef {
  /** CKA_LABEL of the token (trailing blanks removed). */
  token: string;
  /** CKA_ID shared by the private and public key objects. */
  id: Buffer;
  /** CKA_LABEL of the key objects. */
  object?: string;
  type?: 'private' | 'public' | 'secret-key' | 'cert' | 'data';
}

const PATH_ATTRIBUTES = new Set([
  'token',
  'id',
  'object',
  'type',
  'manufacturer',
  'model',
  'serial',
  'library-manufacturer',
  'library-description',
  'library-version',
  'slot-description',
  'slot-manufacturer',
  'slot-id',
]);
const OBJECT_TYPES = new Set(['private', 'public', 'secret-key', 'cert', 'data']);

function invalid(uri: string, why: string): DomainError {
  // Echo a bounded prefix of the path only: the query may hold a PIN (pin-value), which never goes into a message.
  const path = uri.split('?', 1)[0];
  const shown = path.length > 200 ? `${path.slice(0, 200)}…` : path;
  return new DomainError(ErrorCode.VALIDATION_ERROR, `pkcs11 uri '${shown}': ${why}`);
}

function decodeBytes(uri: string, value: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '%') {
      const hex = value.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw invalid(uri, `bad percent-encoding near '${value.slice(i, i + 3)}'`);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      for (const b of Buffer.from(ch, 'utf8')) bytes.push(b);
    }
  }
  return Buffer.from(bytes);
}

/** Percent-encodes every byte: ids are binary. */
function encodeId(id: Buffer): string {
  let out = '';
  for (const b of id) out += `%${b.toString(16).padStart(2, '0')}`;
  return out;
}

/** Percent-encodes a text attribute, leaving RFC 3986 unreserved characters readable. */
function encodeText(value: string): string {
  let out = '';
  for (const b of Buffer.from(value, 'utf8')) {
    const ch = String.fromCharCode(b);
    out += /[A-Za-z0-9\-._~]/.test(ch) ? ch : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function formatPkcs11Uri(ref: Pkcs11KeyRef): string {
  const parts = [`token=${encodeText(ref.token)}`, `id=${encodeId(ref.id)}`];
  if (ref.object !== undefined) parts.push(`object=${encodeText(ref.object)}`);
  if (ref.type !== undefined) parts.push(`type=${ref.type}`);
  return `pkcs11:${parts.join(';')}`;
}

/**
 * Parses a key reference. Requires `token` and `id`; refuses PINs and module paths in the
 * URI (RFC 7512 allows `pin-value`, but a PIN must never travel inside a stored reference).
 */
export function parsePkcs11Uri(uri: string): Pkcs11KeyRef {
  if (typeof uri !== 'string' || !uri.startsWith('pkcs11:')) throw invalid(String(uri), "must start with 'pkcs11:'");
  const body = uri.slice('pkcs11:'.length);
  const [path, query] = body.split('?', 2);
  if (query !== undefined && query.length > 0) {
    for (const q of query.split('&')) {
      const name = q.split('=', 1)[0];
      if (name === 'pin-value' || name === 'pin-source')
        throw invalid(uri, `'${name}' is not accepted: PINs come from configuration`);
      if (name === 'module-name' || name === 'module-path')
        throw invalid(uri, `'${name}' is not accepted: the module comes from configuration`);
    }
  }
  const seen = new Map<string, string>();
  for (const attr of path.split(';')) {
    if (attr === '') continue;
    const eq = attr.indexOf('=');
    if (eq <= 0) throw invalid(uri, `malformed attribute '${attr}'`);
    const name = attr.slice(0, eq);
    if (!PATH_ATTRIBUTES.has(name)) throw invalid(uri, `unknown attribute '${name}'`);
    if (seen.has(name)) throw invalid(uri, `duplicate attribute '${name}'`);
    seen.set(name, attr.slice(eq + 1));
  }
  const token = seen.get('token');
  const id = seen.get('id');
  if (token === undefined || token === '') throw invalid(uri, "'token' is required");
  if (id === undefined || id === '') throw invalid(uri, "'id' is required");
  const ref: Pkcs11KeyRef = { token: decodeBytes(uri, token).toString('utf8'), id: decodeBytes(uri, id) };
  const object = seen.get('object');
  if (object !== undefined) ref.object = decodeBytes(uri, object).toString('utf8');
  const type = seen.get('type');
  if (type !== undefined) {
    if (!OBJECT_TYPES.has(type)) throw invalid(uri, `unknown type '${type}'`);
    ref.type = type as Pkcs11KeyRef['type'];
  }
  return ref;
}

/** Identity of a key for comparisons: URIs that differ only in encoding or `object` name the same pair. */
export function keyIdentity(ref: Pick<Pkcs11KeyRef, 'token' | 'id'>): string {
  return `${ref.token}\u0000${ref.id.toString('hex')}`;
}
