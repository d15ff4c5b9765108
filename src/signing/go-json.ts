/**
 * JSON read the way the verifier reads it. Notation's verifier is Go: `encoding/json` decodes the
 * Notary payload and the JWS protected header into structs, and a struct field takes any JSON name
 * that folds to its own (ASCII case-insensitively, plus `ſ` U+017F → s and `K` U+212A → k), the
 * last one winning. `JSON.parse` matches names exactly and keeps the last duplicate, so the two can
 * read one document as two artifacts (THREATS.md, "Parser differentials").
 *
 * This parser accepts exactly RFC 8259 JSON (Go's grammar: same whitespace, numbers, escapes) and
 * refuses, as AmbiguousJson, every document Go would read but could read differently from Signet:
 * - invalid UTF-8, a lone surrogate (raw or `\u` escaped): Go substitutes U+FFFD;
 * - a byte-order mark: Go refuses it, JSON.parse-based readers differ;
 * - in any object, two names that fold to the same name (duplicates included): Go's field
 *   matching keeps the last, a map keeps both when only their case differs;
 * - a name containing a non-ASCII character that folds to ASCII (`ſ`, `K`): Go matches it to an
 *   ASCII field name, and Go versions have differed on which characters do;
 * - nesting deeper than MAX_DEPTH.
 * What is not JSON at all (Go refuses it too) is a JsonSyntaxError.
 * Values keep what a reader needs to decide like Go: strings decoded, numbers as their literal
 * text, objects as their members in order (names folded for lookup).
 */
export type GoJsonValue = string | boolean | null | GoJsonNumber | GoJsonObject | GoJsonValue[];

export class GoJsonNumber {
  constructor(readonly literal: string) {}
}

export class GoJsonObject {
  /** folded name → [name as written, value]; at most one per folded name (else AmbiguousJson). */
  readonly members = new Map<string, [string, GoJsonValue]>();

  /** The value Go would decode into a struct field tagged `name` (an ASCII name). */
  field(name: string): GoJsonValue | undefined {
    return this.members.get(foldAscii(name))?.[1];
  }
}

export class JsonSyntaxError extends Error {}
export class AmbiguousJson extends Error {}

export const MAX_DEPTH = 64;

/**
 * The non-ASCII characters Go's `encoding/json` folds to an ASCII letter when it matches names
 * (Go 1.21+: the smallest rune of the `unicode.SimpleFold` orbit; before: the same two special
 * cases). The differential test (test/signing/go-payload.e2e-spec.ts) asks Go for the list.
 */
export const FOLDS_TO_ASCII: ReadonlyMap<string, string> = new Map([
  ['\u017f', 'S'],
  ['\u212a', 'K'],
]);

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Parses `bytes` as one JSON value (surrounding whitespace allowed, as Go allows it). */
export function parseGoJson(bytes: Uint8Array): GoJsonValue {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new AmbiguousJson('the JSON is not valid UTF-8 (Go would read U+FFFD in place of the bad bytes)');
  }
  if (text.charCodeAt(0) === 0xfeff) throw new AmbiguousJson('the JSON starts with a byte-order mark');
  const parser = new Parser(text);
  parser.space();
  const value = parser.value(0);
  parser.space();
  if (parser.pos !== text.length)
    throw new JsonSyntaxError(`unexpected data after the JSON value at offset ${parser.pos}`);
  return value;
}

/** Go's name folding restricted to what can reach an ASCII field name (see FOLDS_TO_ASCII). */
export function foldAscii(name: string): string {
  let folded = '';
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    folded += c >= 0x61 && c <= 0x7a ? String.fromCharCode(c - 0x20) : name[i];
  }
  return folded;
}

class Parser {
  pos = 0;

  constructor(private readonly text: string) {}

  space(): void {
    const text = this.text;
    while (this.pos < text.length) {
      const c = text.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      this.pos++;
    }
  }

  value(depth: number): GoJsonValue {
    const c = this.text[this.pos];
    switch (c) {
      case '{':
        return this.object(depth + 1);
      case '[':
        return this.array(depth + 1);
      case '"':
        return this.string();
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      default:
        if (c === '-' || (c >= '0' && c <= '9')) return this.number();
        throw this.syntax(c === undefined ? 'unexpected end of JSON' : `unexpected character ${JSON.stringify(c)}`);
    }
  }

  private object(depth: number): GoJsonObject {
    if (depth > MAX_DEPTH) throw new AmbiguousJson(`the JSON nests deeper than ${MAX_DEPTH} levels`);
    const object = new GoJsonObject();
    this.pos++;
    this.space();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return object;
    }
    for (;;) {
      if (this.text[this.pos] !== '"') throw this.syntax('expected a member name');
      const name = this.string();
      for (const ch of name) {
        if (FOLDS_TO_ASCII.has(ch)) {
          throw new AmbiguousJson(
            `the member name ${JSON.stringify(name.slice(0, 64))} contains U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}, which Go matches to the ASCII letter ${FOLDS_TO_ASCII.get(ch)}`,
          );
        }
      }
      const folded = foldAscii(name);
      const previous = object.members.get(folded);
      if (previous) {
        throw new AmbiguousJson(
          previous[0] === name
            ? `the member name ${JSON.stringify(name.slice(0, 64))} appears twice in one object`
            : `the member names ${JSON.stringify(previous[0].slice(0, 64))} and ${JSON.stringify(name.slice(0, 64))} are one name to Go (it matches names case-insensitively)`,
        );
      }
      this.space();
      if (this.text[this.pos] !== ':') throw this.syntax("expected ':'");
      this.pos++;
      this.space();
      object.members.set(folded, [name, this.value(depth)]);
      this.space();
      const next = this.text[this.pos++];
      if (next === '}') return object;
      if (next !== ',') throw this.syntax("expected ',' or '}'");
      this.space();
    }
  }

  private array(depth: number): GoJsonValue[] {
    if (depth > MAX_DEPTH) throw new AmbiguousJson(`the JSON nests deeper than ${MAX_DEPTH} levels`);
    const items: GoJsonValue[] = [];
    this.pos++;
    this.space();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return items;
    }
    for (;;) {
      items.push(this.value(depth));
      this.space();
      const next = this.text[this.pos++];
      if (next === ']') return items;
      if (next !== ',') throw this.syntax("expected ',' or ']'");
      this.space();
    }
  }

  private string(): string {
    const text = this.text;
    let out = '';
    let start = ++this.pos;
    for (;;) {
      if (this.pos >= text.length) throw this.syntax('unterminated string');
      const c = text.charCodeAt(this.pos);
      if (c === 0x22) {
        out += text.slice(start, this.pos++);
        return out;
      }
      if (c < 0x20) throw this.syntax('control character in a string');
      // Valid UTF-8 decodes to well-formed UTF-16: raw surrogates here are always paired.
      if (c !== 0x5c) {
        this.pos++;
        continue;
      }
      out += text.slice(start, this.pos);
      const e = text[this.pos + 1];
      this.pos += 2;
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          const unit = this.hex4();
          if (unit >= 0xd800 && unit <= 0xdbff && text[this.pos] === '\\' && text[this.pos + 1] === 'u') {
            this.pos += 2;
            const low = this.hex4();
            if (low < 0xdc00 || low > 0xdfff)
              throw new AmbiguousJson('a \\u escape holds a lone surrogate (Go reads U+FFFD)');
            out += String.fromCharCode(unit, low);
          } else if (unit >= 0xd800 && unit <= 0xdfff) {
            throw new AmbiguousJson('a \\u escape holds a lone surrogate (Go reads U+FFFD)');
          } else {
            out += String.fromCharCode(unit);
          }
          break;
        }
        default:
          throw this.syntax('invalid escape in a string');
      }
      start = this.pos;
    }
  }

  private hex4(): number {
    const digits = this.text.slice(this.pos, this.pos + 4);
    if (!/^[0-9A-Fa-f]{4}$/.test(digits)) throw this.syntax('invalid \\u escape');
    this.pos += 4;
    return parseInt(digits, 16);
  }

  private number(): GoJsonNumber {
    const match = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(
      this.text.slice(this.pos, this.pos + 400),
    );
    if (!match) throw this.syntax('invalid number');
    const literal = match[0];
    if (literal.length === 400) throw new AmbiguousJson('a number literal is longer than 400 characters');
    this.pos += literal.length;
    return new GoJsonNumber(literal);
  }

  private literal<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) throw this.syntax('invalid literal');
    this.pos += word.length;
    return value;
  }

  private syntax(message: string): JsonSyntaxError {
    return new JsonSyntaxError(`${message} at offset ${this.pos}`);
  }
}
