import { hash } from 'node:crypto';
import { AuditActor, JsonValue } from './audit.types';

/**
 * The bytes Signet hashes for an audit row and signs for a checkpoint. They are fixed here, in
 * code, and never re-derived from how PostgreSQL prints its types: RFC 8785 (JSON Canonicalization
 * Scheme) over a small object whose fields and formats are pinned below. Changing anything in this
 * file breaks every existing chain; bump `v` and branch instead.
 */
export const CANONICAL_VERSION = 1;

/** prev_hash of the first row (seq 1): 32 zero bytes. */
export const GENESIS_HASH = Buffer.alloc(32);

/** What one row's hash covers. `seq` is a decimal string (bigint-safe), `time` ISO-8601 ms UTC. */
export interface CanonicalEventFields {
  seq: string;
  time: string;
  type: string;
  actor: AuditActor | null;
  subject: string | null;
  data: { [key: string]: JsonValue };
  prevHash: Buffer;
}

/**
 * RFC 8785: object members sorted by UTF-16 code units, no whitespace, strings and numbers as
 * ECMAScript JSON.stringify writes them (which is what the RFC specifies).
 */
export function canonicalJson(value: JsonValue): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonicalJson: numbers must be finite');
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
      const keys = Object.keys(value).sort();
      const members: string[] = [];
      for (const key of keys) {
        const member = value[key];
        if (member === undefined) continue;
        members.push(`${JSON.stringify(key)}:${canonicalJson(member)}`);
      }
      return `{${members.join(',')}}`;
    }
    default:
      throw new TypeError(`canonicalJson: unsupported ${typeof value}`);
  }
}

/**
 * The canonical text of one row. The top-level members are fixed, so they are written in their
 * RFC 8785 order directly (actor, data, prevHash, seq, subject, time, type, v); `actor` and `data`
 * are canonicalised recursively. `dataJson`/`actorJson` may be passed precomputed (hot path).
 */
export function canonicalEventText(
  fields: CanonicalEventFields,
  precomputed?: { actorJson: string; dataJson: string },
): string {
  const actorJson =
    precomputed?.actorJson ?? (fields.actor === null ? 'null' : canonicalJson(fields.actor as unknown as JsonValue));
  const dataJson = precomputed?.dataJson ?? canonicalJson(fields.data);
  return (
    `{"actor":${actorJson},"data":${dataJson},"prevHash":"${fields.prevHash.toString('hex')}","seq":"${fields.seq}",` +
    `"subject":${fields.subject === null ? 'null' : JSON.stringify(fields.subject)},"time":"${fields.time}",` +
    `"type":${JSON.stringify(fields.type)},"v":${CANONICAL_VERSION}}`
  );
}

export function eventHash(fields: CanonicalEventFields, precomputed?: { actorJson: string; dataJson: string }): Buffer {
  // One-shot hash (the text is UTF-8 encoded): a fraction of createHash().update().digest()'s cost.
  return hash('sha256', canonicalEventText(fields, precomputed), 'buffer');
}

/**
 * One row's parts as canonical JSON text (`actorJson` and `subjectJson` are `null` for none;
 * `typeJson` and `subjectJson` are JSON strings), for the writer's hot path: the same bytes as
 * canonicalEventText, with nothing re-serialised per row.
 */
export interface CanonicalRowText {
  typeJson: string;
  actorJson: string;
  subjectJson: string;
  dataJson: string;
}

/** eventHash of a row given as CanonicalRowText, in lower-case hex (the chain's own hot path). */
export function eventHashHex(seq: string, time: string, row: CanonicalRowText, prevHashHex: string): string {
  return hash(
    'sha256',
    `{"actor":${row.actorJson},"data":${row.dataJson},"prevHash":"${prevHashHex}","seq":"${seq}","subject":${row.subjectJson},"time":"${time}","type":${row.typeJson},"v":${CANONICAL_VERSION}}`,
    'hex',
  );
}

/** A string as canonical JSON text, after storableString: what canonicalJson(normaliseJson(s)) gives. */
export function canonicalString(value: string): string {
  return JSON.stringify(storableString(value));
}

/**
 * canonicalJson(normaliseActor(actor)) written directly: the members in RFC 8785 order (address,
 * role, tokenId, tokenName, workload), each only when it is a string (workload: an object). Runs
 * once per audited request.
 */
export function canonicalActorJson(actor: AuditActor | undefined): string {
  if (!actor) return 'null';
  let out = '';
  if (typeof actor.address === 'string') out += `,"address":${canonicalString(actor.address)}`;
  if (typeof actor.role === 'string') out += `,"role":${canonicalString(actor.role)}`;
  if (typeof actor.tokenId === 'string') out += `,"tokenId":${canonicalString(actor.tokenId)}`;
  if (typeof actor.tokenName === 'string') out += `,"tokenName":${canonicalString(actor.tokenName)}`;
  if (isPlainObject(actor.workload)) out += `,"workload":${canonicalWorkloadJson(actor.workload)}`;
  return out === '' ? 'null' : `{${out.slice(1)}}`;
}

/**
 * Canonical text of frozen workload parts, by object: a workload identity hands the same frozen
 * object to every request with one cached token (src/identity/workload-principal.ts), so its text
 * is built once. Only objects frozen all the way down are kept (they cannot change afterwards).
 */
const workloadTexts = new WeakMap<object, string>();

function canonicalWorkloadJson(workload: object): string {
  let text = workloadTexts.get(workload);
  if (text === undefined) {
    text = canonicalJson(normaliseJson(workload) as JsonValue);
    if (deeplyFrozen(workload, 0)) workloadTexts.set(workload, text);
  }
  return text;
}

function deeplyFrozen(value: unknown, depth: number): boolean {
  if (value === null || typeof value !== 'object') return true;
  if (depth > 4 || !Object.isFrozen(value)) return false;
  return Object.values(value).every((member) => deeplyFrozen(member, depth + 1));
}

let lastTimeMs = NaN;
let lastTimeText = '';

/** ISO-8601 with milliseconds in UTC: the only time format the chain uses. */
export function canonicalTime(epochMs: number): string {
  // Rows of one batch mostly share a millisecond: reuse the last text.
  if (epochMs !== lastTimeMs) {
    lastTimeText = new Date(epochMs).toISOString();
    lastTimeMs = epochMs;
  }
  return lastTimeText;
}

/**
 * The statement a checkpoint signs: which log, which head. Verifiers off-site rebuild it from the
 * checkpoint's (seq, hash, time) and check the signature over these bytes.
 */
export function checkpointStatement(checkpoint: { seq: string; hash: Buffer; time: string }): Buffer {
  return Buffer.from(
    canonicalJson({
      hash: checkpoint.hash.toString('hex'),
      log: 'signet-audit',
      seq: checkpoint.seq,
      time: checkpoint.time,
      v: CANONICAL_VERSION,
    }),
    'utf8',
  );
}

// Lone UTF-16 surrogates cannot be stored (PostgreSQL's UTF-8 text and jsonb refuse them) and NUL
// cannot be stored in text/jsonb either, so both become U+FFFD before anything is hashed.
// eslint-disable-next-line no-control-regex -- NUL is precisely what must be matched
const UNSTORABLE = /[\u0000]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

export function storableString(value: string): string {
  return value.replace(UNSTORABLE, '\uFFFD');
}

/**
 * Turns what a caller passes as event data into plain JSON that survives a round trip through
 * jsonb unchanged: undefined members dropped, Dates as ISO strings, Buffers/Uint8Arrays as base64
 * (API.md's binary encoding), bigints as decimal strings, non-finite numbers as null, unstorable
 * characters replaced. Cycles and absurd nesting are programming errors and throw.
 */
export function normaliseJson(value: unknown, depth = 0): JsonValue | undefined {
  if (depth > 32) throw new TypeError('audit data nests deeper than 32 levels');
  if (value === null) return null;
  switch (typeof value) {
    case 'string':
      return storableString(value);
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'boolean':
      return value;
    case 'bigint':
      return value.toString();
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
    case 'object':
      break;
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return Buffer.from(value as Uint8Array).toString('base64');
  if (Array.isArray(value)) return value.map((item) => normaliseJson(item, depth + 1) ?? null);
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return normaliseJson(toJSON.call(value), depth + 1);
  const out: { [key: string]: JsonValue } = {};
  for (const [key, member] of Object.entries(value as Record<string, unknown>)) {
    const normalised = normaliseJson(member, depth + 1);
    if (normalised !== undefined) out[storableString(key)] = normalised;
  }
  return out;
}

export function normaliseActor(actor: AuditActor | undefined): AuditActor | null {
  if (!actor) return null;
  const out: AuditActor = {};
  for (const key of ['tokenId', 'tokenName', 'role', 'address'] as const) {
    const value = actor[key];
    if (typeof value === 'string') out[key] = storableString(value);
  }
  if (isPlainObject(actor.workload)) out.workload = normaliseJson(actor.workload) as unknown as AuditActor['workload'];
  return Object.keys(out).length === 0 ? null : out;
}

function isPlainObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
