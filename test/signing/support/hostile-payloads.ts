import fc from 'fast-check';

/**
 * Notary payloads (`{"targetArtifact": <OCI descriptor>}`) written the ways a hostile client can
 * make two JSON readers disagree: member names in any case, with `ſ` (U+017F) for s and `K`
 * (U+212A) for k, with `\u` escapes; the same field several times; whitespace JSON allows and some
 * it does not; escapes and surrogates in values; numbers Go's int64 refuses; invalid UTF-8; a
 * byte-order mark; trailing data; deep nesting. Used by the Go differential test and the fuzz suite.
 */
export const DIGEST_X = `sha256:${'a1'.repeat(32)}`;
export const DIGEST_Y = `sha256:${'b2'.repeat(32)}`;
export const DIGEST_Z = `sha256:${'c3'.repeat(32)}`;
export const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';

const hex4 = (code: number, upper: boolean) => {
  const text = code.toString(16).padStart(4, '0');
  return `\\u${upper ? text.toUpperCase() : text}`;
};

/** `name` spelled so that Go may or may not match it to the field `name`. */
function spelled(name: string): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.constant(name) },
    {
      weight: 4,
      arbitrary: fc
        .array(fc.nat(15 + 2 * name.length), { minLength: name.length, maxLength: name.length })
        .map((choices) =>
          [...name]
            .map((ch, i) => {
              const choice = choices[i];
              const lower = ch.toLowerCase();
              if (choice < 8 || choice > 15) return ch;
              if (choice < 11) return ch === lower ? ch.toUpperCase() : lower;
              if (choice === 11) return hex4(ch.charCodeAt(0), false);
              if (choice === 12) return hex4(ch.charCodeAt(0), true);
              if (choice === 13 && lower === 's') return '\u017f';
              if (choice === 13 && lower === 'k') return '\u212a';
              if (choice === 14 && lower === 's') return hex4(0x17f, i % 2 === 0);
              if (choice === 14 && lower === 'k') return '\u212a';
              return choice === 15 ? ch.toUpperCase() : ch;
            })
            .join(''),
        ),
    },
    // Near misses: Go does not match these to the field.
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        `${name} `,
        `${name}\\u0000`,
        `${name}\u200b`,
        `_${name}`,
        `${name.slice(0, -1)}`,
        `${name}\u0130`,
      ),
    },
  );
}

const ws = fc.oneof(
  { weight: 30, arbitrary: fc.constant('') },
  { weight: 4, arbitrary: fc.constantFrom(' ', '\n', '\t', '\r\n', '  \t') },
  // Not JSON whitespace: both readers must refuse.
  { weight: 1, arbitrary: fc.constantFrom('\u00a0', '\f', '\v', '\u2028', '\u3000') },
);

const digestValue = fc.oneof(
  { weight: 14, arbitrary: fc.constantFrom(DIGEST_X, DIGEST_Y, DIGEST_Z).map((d) => `"${d}"`) },
  // The same digest with escaped characters.
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(DIGEST_X, DIGEST_Y), fc.nat(70), fc.boolean())
      .map(([d, i, upper]) => `"${d.slice(0, i)}${i < d.length ? hex4(d.charCodeAt(i), upper) : ''}${d.slice(i + 1)}"`),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'null',
      '5',
      '{}',
      '[]',
      `"${DIGEST_X.toUpperCase()}"`,
      `"${DIGEST_X}\\u0000"`,
      `"${DIGEST_Y}\\ud800"`,
      `"${DIGEST_X} "`,
    ),
  },
);

const sizeValue = fc.oneof(
  { weight: 16, arbitrary: fc.constantFrom('528', '0', '1234567') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '528.0',
      '5.28e2',
      '-0',
      '-1',
      '0528',
      '1e400',
      '9007199254740993',
      '9223372036854775808',
      '"528"',
      'null',
      '528 ',
      '1E2',
      '2.5',
    ),
  },
);

const mediaTypeValue = fc.oneof(
  { weight: 16, arbitrary: fc.constant(`"${MANIFEST_TYPE}"`) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      `"${MANIFEST_TYPE.replace('/', '\\/')}"`,
      `"${MANIFEST_TYPE.replace('a', '\\u0061')}"`,
      'null',
      '7',
      '"text/plain"',
    ),
  },
);

/** Any JSON value (and a few non-values), nested: what unknown members carry. */
const junk: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(
      '1',
      '-2.5e-3',
      'true',
      'false',
      'null',
      '"x"',
      '"\\ud83d\\ude00"',
      '"\\ud800"',
      '"\\u017f"',
      '"é"',
      '"\\t"',
      '01',
      '"\u0001"',
    ),
    fc.array(tie('value'), { maxLength: 3 }).map((items) => `[${items.join(',')}]`),
    fc
      .array(fc.tuple(fc.constantFrom('k', 'K', '\u212a', 'a', 'A', 'size', 'digest', 'Digest'), tie('value')), {
        maxLength: 3,
      })
      .map((members) => `{${members.map(([k, v]) => `"${k}":${v}`).join(',')}}`),
  ),
})).value;

const annotationsValue = fc.oneof(
  fc
    .array(
      fc.tuple(
        fc.constantFrom('a', 'A', 'org.example', 'ORG.example', 'k', '\u212a'),
        fc.constantFrom('"v"', '"w"', 'null', '1'),
      ),
      { maxLength: 3 },
    )
    .map((members) => `{${members.map(([k, v]) => `"${k}":${v}`).join(',')}}`),
  fc.constantFrom('null', '"x"', '[]'),
);

function object(members: fc.Arbitrary<Array<[string, string]>>): fc.Arbitrary<string> {
  return fc.tuple(members, fc.array(ws, { minLength: 12, maxLength: 12 })).map(([list, spaces]) => {
    const s = (i: number) => spaces[i % spaces.length];
    return `{${s(0)}${list.map(([name, value], i) => `"${name}"${s(i + 1)}:${s(i + 2)}${value}`).join(`${s(3)},${s(4)}`)}${s(5)}}`;
  });
}

const descriptorMember = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(spelled('digest'), digestValue) },
  { weight: 3, arbitrary: fc.tuple(spelled('mediaType'), mediaTypeValue) },
  { weight: 3, arbitrary: fc.tuple(spelled('size'), sizeValue) },
  { weight: 1, arbitrary: fc.tuple(spelled('annotations'), annotationsValue) },
  {
    weight: 1,
    arbitrary: fc.tuple(
      fc.constantFrom('urls', 'data', 'platform', 'artifactType', 'Urls', 'DATA'),
      fc.constantFrom('null', '["u"]', '"AA=="', '{}', '"x"', '5'),
    ),
  },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('extra', 'note', 'Kind'), junk) },
);

/** A descriptor: usually the three fields once each, shuffled, plus extra or repeated members. */
const descriptor = fc
  .tuple(
    fc.tuple(spelled('mediaType'), mediaTypeValue),
    fc.tuple(spelled('digest'), digestValue),
    fc.tuple(spelled('size'), sizeValue),
    fc.oneof(
      { weight: 3, arbitrary: fc.constant([]) },
      { weight: 2, arbitrary: fc.array(descriptorMember, { minLength: 1, maxLength: 3 }) },
    ),
    fc.array(fc.nat(), { minLength: 6, maxLength: 6 }),
    fc.boolean(),
  )
  .chain(([m, d, s, extra, order, all]) => {
    const members = [...(all ? [m, d, s] : [m, d, s].filter((_, i) => order[i] % 8 !== 0)), ...extra];
    // A deterministic shuffle driven by the generated numbers.
    const shuffled = members
      .map((member, i) => ({ member, key: order[i % order.length] + i }))
      .sort((a, b) => a.key - b.key)
      .map((x) => x.member);
    return object(fc.constant(shuffled));
  });

const topMember = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(spelled('targetArtifact'), descriptor) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('iss', 'subject', 'TargetArtifacts', 'payload'), junk) },
  { weight: 1, arbitrary: fc.tuple(spelled('targetArtifact'), fc.constantFrom('null', '[]', '"x"', '1')) },
);

const payloadText = fc.oneof(
  { weight: 6, arbitrary: object(fc.tuple(spelled('targetArtifact'), descriptor).map((member) => [member])) },
  { weight: 4, arbitrary: object(fc.array(topMember, { minLength: 1, maxLength: 3 })) },
  { weight: 1, arbitrary: descriptor.map((d) => `[${d}]`) },
  {
    weight: 1,
    arbitrary: fc
      .nat({ max: 80 })
      .chain((depth) => descriptor.map((d) => `{"targetArtifact":${d},"n":${'['.repeat(depth)}${']'.repeat(depth)}}`)),
  },
);

/** Byte-level damage: a BOM, invalid UTF-8, a CESU-8 surrogate, trailing data. */
const damage = fc.oneof(
  { weight: 40, arbitrary: fc.constant((bytes: Buffer) => bytes) },
  ...[
    (bytes: Buffer) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]),
    (bytes: Buffer) => Buffer.concat([bytes, Buffer.from(' x')]),
    (bytes: Buffer) => Buffer.concat([bytes, Buffer.from('}')]),
    (bytes: Buffer) => Buffer.concat([bytes, Buffer.from(' \n')]),
  ].map((f) => ({ weight: 1, arbitrary: fc.constant(f) })),
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom([0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0x80]), fc.nat())
      .map(([bad, at]) => (bytes: Buffer) => {
        // Inside a string value when there is one (Go substitutes U+FFFD there), else anywhere.
        const quotes = [...bytes.keys()].filter((i) => bytes[i] === 0x22);
        const i = quotes.length > 0 ? quotes[at % quotes.length] + 1 : at % (bytes.length + 1);
        return Buffer.concat([bytes.subarray(0, i), Buffer.from(bad), bytes.subarray(i)]);
      }),
  },
);

export const hostilePayload: fc.Arbitrary<Buffer> = fc
  .tuple(ws, payloadText, ws, damage)
  .map(([before, text, after, hurt]) => hurt(Buffer.from(`${before}${text}${after}`, 'utf8')));
