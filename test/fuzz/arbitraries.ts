import fc from 'fast-check';

/**
 * Shared fast-check arbitraries and run counts for the fuzz tests.
 *
 * SIGNET_FUZZ_RUNS sets the runs of each per-route property (default 8, sized to keep `npm test`
 * within its budget); the single-endpoint properties (OCSP, uploads) run a fixed multiple of it.
 * SIGNET_FUZZ_SEED replays a failing run (fast-check prints the seed and path on failure).
 */
const DEFAULT_RUNS = 8;

export function fuzzRuns(multiple = 1): number {
  const raw = process.env.SIGNET_FUZZ_RUNS;
  if (raw !== undefined && !/^[1-9]\d{0,6}$/.test(raw)) throw new Error('SIGNET_FUZZ_RUNS must be a whole number ≥ 1');
  return (raw === undefined ? DEFAULT_RUNS : Number(raw)) * multiple;
}

export function fuzzParameters(multiple = 1): fc.Parameters<unknown> {
  const seed = process.env.SIGNET_FUZZ_SEED;
  return { numRuns: fuzzRuns(multiple), ...(seed ? { seed: Number(seed) } : {}) };
}

/** Strings parsers and validators get wrong: empty, traversal, NUL, control and bidi characters, numbers in disguise, very long. */
const NASTY_STRINGS = [
  '',
  ' ',
  '.',
  '..',
  '../../etc/passwd',
  '\u0000',
  'a\u0000b',
  '\r\n',
  '\t',
  '\u202e',
  '\ufeff',
  '💥',
  '\ud800',
  'Ω≈ç√',
  'null',
  'undefined',
  'true',
  'NaN',
  'Infinity',
  '-1',
  '0',
  '1e309',
  '0x10',
  '-0',
  '99999999999999999999999',
  "' OR 1=1 --",
  '"; DROP TABLE keys; --',
  '${jndi:ldap://x}',
  '{{7*7}}',
  '<script>alert(1)</script>',
  '__proto__',
  'constructor',
  'a'.repeat(300),
  'é'.repeat(5000),
  'x'.repeat(70_000),
];

export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 16 }) },
);

/** Any JSON value, with the hostile strings mixed in. */
export const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  hostileString,
  fc.constantFrom(
    null,
    true,
    false,
    0,
    -1,
    1.5,
    2 ** 53,
    -(2 ** 63),
    1e308,
    [],
    {},
    [null],
    { '': '' },
    { __proto__: { admin: true } },
  ),
);

/** The JSON text of a value nested `depth` levels deep. */
function nested(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array' ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Paths (arrays of keys) to every member of a JSON object, nested ones included. */
function paths(value: Json, prefix: string[] = []): string[][] {
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, child]) => [[...prefix, key], ...paths(child, [...prefix, key])]);
}

function withPath(value: Json, path: string[], change: (parent: Record<string, Json>, key: string) => void): Json {
  const copy = structuredClone(value) as Record<string, Json>;
  let parent = copy;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string, Json>;
  change(parent, path[path.length - 1]);
  return copy;
}

/** A valid body with one member replaced by a hostile value, removed, or joined by an unknown one. */
export function nearValid(sample: object): fc.Arbitrary<unknown> {
  const members = paths(sample as Json);
  if (members.length === 0) return fc.dictionary(fc.string({ maxLength: 12 }), hostileJson, { maxKeys: 3 });
  const member = fc.constantFrom(...members);
  return fc.oneof(
    fc
      .tuple(member, hostileJson)
      .map(([path, value]) => withPath(sample as Json, path, (parent, key) => (parent[key] = value as Json))),
    member.map((path) => withPath(sample as Json, path, (parent, key) => delete parent[key])),
    fc
      .tuple(member, fc.string({ minLength: 1, maxLength: 12 }), hostileJson)
      .map(([path, extra, value]) =>
        withPath(sample as Json, path, (parent) => (parent[`x-${extra}`] = value as Json)),
      ),
    fc.constant(Object.assign(structuredClone(sample), { unknownField: 1 })),
    fc.constant([sample]),
  );
}

export interface RawBody {
  payload: string;
  contentType?: string;
}

/** Raw request bodies: JSON values, near-valid bodies, deep nesting, huge strings, non-JSON text, odd content types. */
export function rawBody(sample: object | undefined): fc.Arbitrary<RawBody> {
  const json = (value: fc.Arbitrary<unknown>) =>
    value.map((v) => ({ payload: JSON.stringify(v) ?? 'null', contentType: 'application/json' }));
  return fc.oneof(
    { weight: 3, arbitrary: json(sample ? nearValid(sample) : hostileJson) },
    { weight: 2, arbitrary: json(hostileJson) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.integer({ min: 2, max: 20_000 }),
          fc.constantFrom('array', 'object') as fc.Arbitrary<'array' | 'object'>,
        )
        .map(([depth, kind]) => ({ payload: nested(depth, kind), contentType: 'application/json' })),
    },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 1000, max: 200_000 })
        .map((n) => ({ payload: JSON.stringify({ name: 'x'.repeat(n) }), contentType: 'application/json' })),
    },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(
          '{nope',
          '',
          '{"a":1}{"b":2}',
          '\ufeff{}',
          '{"a":"\\ud800"}',
          '[1,2,',
          'nul',
          '1e99999',
          '"\u0000"',
        )
        .map((payload) => ({ payload, contentType: 'application/json' })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.string({ maxLength: 40 }),
          fc.constantFrom(
            undefined,
            'text/plain',
            'application/x-www-form-urlencoded',
            'multipart/form-data; boundary=x',
            'application/json; charset=utf-16',
            'application/ocsp-request',
            'application/json; charset=%%%',
          ),
        )
        .map(([payload, contentType]) => ({ payload, contentType })),
    },
  );
}

/** A path segment as it appears in the URL: encoded hostile strings, and raw traversal / bad escapes / very long. */
export const pathSegment: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 3,
    arbitrary: hostileString
      .filter((s) => s.length > 0)
      .map((s) => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, '\ufffd'))),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '..',
      '.',
      '%2e%2e',
      '%00',
      'a%00b',
      '%ZZ',
      '%',
      '%2F',
      'a%2Fb',
      '%C0%AE',
      '%ff',
      '~',
      'a;b',
      'a'.repeat(5000),
      '00',
      '-1',
      '1.5',
      '0x1',
      '99999999999999999999',
      'null',
    ),
  },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9._~-]{1,40}$/) },
);

/** A query string (with its `?`): known and random names, hostile or repeated values, bad escapes. */
export function queryString(knownNames: string[]): fc.Arbitrary<string> {
  const name = fc.oneof(
    fc.constantFrom(...knownNames, '__proto__', 'constructor', ''),
    fc.stringMatching(/^[a-z]{1,8}$/),
  );
  const pair = fc
    .tuple(name, fc.oneof(pathSegment, fc.constantFrom('', '1', '0', '-1', '1001', 'true', 'pem', 'notation')))
    .map(([k, v]) => `${k}=${v}`);
  return fc.oneof(
    { weight: 4, arbitrary: fc.array(pair, { minLength: 1, maxLength: 5 }).map((pairs) => `?${pairs.join('&')}`) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '?',
        '?&&==',
        '?%ZZ=1',
        '?a[b]=1&a[c]=2',
        '?limit=1&limit=2',
        `?q=${'a'.repeat(8000)}`,
        '?after=%00',
        '?version=1e3',
      ),
    },
  );
}

/** Byte-level mutations of a valid DER or PEM value: bit flips, truncation, length tampering, junk appended. */
export function mutatedBytes(valid: Buffer): fc.Arbitrary<Buffer> {
  const flip = fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 7 })).map(([index, bit]) => {
    const copy = Buffer.from(valid);
    copy[index] ^= 1 << bit;
    return copy;
  });
  const set = fc
    .tuple(fc.nat(valid.length - 1), fc.constantFrom(0x00, 0x7f, 0x80, 0x81, 0x82, 0x84, 0x89, 0xff))
    .map(([index, value]) => {
      const copy = Buffer.from(valid);
      copy[index] = value;
      return copy;
    });
  // The second byte of a DER TLV is usually its length: tamper with the outer and inner lengths.
  const length = fc
    .tuple(fc.constantFrom(1, 2, 3, 4, 5), fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0x81, 0x84, 0x88, 0xff))
    .map(([index, value]) => {
      const copy = Buffer.from(valid);
      if (index < copy.length) copy[index] = value;
      return copy;
    });
  const truncate = fc.nat(valid.length - 1).map((n) => valid.subarray(0, n));
  const append = fc
    .uint8Array({ minLength: 1, maxLength: 64 })
    .map((junk) => Buffer.concat([valid, Buffer.from(junk)]));
  const splice = fc
    .tuple(fc.nat(valid.length - 1), fc.uint8Array({ minLength: 1, maxLength: 16 }))
    .map(([index, junk]) => Buffer.concat([valid.subarray(0, index), Buffer.from(junk), valid.subarray(index)]));
  return fc.oneof(
    flip,
    set,
    length,
    truncate,
    append,
    splice,
    fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
  );
}
