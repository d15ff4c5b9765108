import { DomainError, ErrorCode } from '../common/errors';

/** Claims a rule may name: JWT claim names as issuers write them (letters, digits, `_`, `-`, `.`, `:`). */
export const CLAIM_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/;
/** Claims a rule must not name: they are checked by verification itself, never matched. */
const RESERVED_CLAIMS = new Set(['iss', 'aud', 'exp', 'nbf', 'iat', 'jti', 'azp']);
export const MAX_RULE_CLAIMS = 16;
export const MAX_PATTERN_LENGTH = 512;

/** A rule's claim patterns: claim name → exact string, or a glob where `*` stands for any run of characters. */
export type ClaimPatterns = Readonly<Record<string, string>>;

/**
 * Checks a rule's `claims` as an admin sent it. At least one claim (a rule matching every token of
 * an issuer is almost always a mistake: name `sub` with `*` to mean it), string patterns only, and
 * a pattern that is nothing but `*` is allowed only for `sub`.
 */
export function parseClaimPatterns(value: unknown, operation: string): ClaimPatterns {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(operation, 'claims', 'must be an object of claim name to exact value or glob');
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) throw invalid(operation, 'claims', 'must name at least one claim');
  if (entries.length > MAX_RULE_CLAIMS)
    throw invalid(operation, 'claims', `may name at most ${MAX_RULE_CLAIMS} claims`);
  const out: Record<string, string> = {};
  for (const [name, pattern] of entries) {
    if (!CLAIM_NAME.test(name)) throw invalid(operation, 'claims', `'${name.slice(0, 64)}' is not a claim name`);
    if (RESERVED_CLAIMS.has(name))
      throw invalid(operation, `claims.${name}`, 'is checked by token verification and cannot be matched by a rule');
    if (typeof pattern !== 'string' || pattern.length === 0 || pattern.length > MAX_PATTERN_LENGTH) {
      throw invalid(
        operation,
        `claims.${name}`,
        `must be a non-empty string of at most ${MAX_PATTERN_LENGTH} characters`,
      );
    }
    if (/^\**$/.test(pattern) && name !== 'sub')
      throw invalid(operation, `claims.${name}`, "a pattern of only '*' matches anything; leave the claim out instead");
    out[name] = pattern;
  }
  return out;
}

/**
 * Whether `value` matches `pattern`: equal strings, or `*` standing for any (possibly empty) run of
 * characters. Everything else is literal (no `?`, classes or escapes). Linear-time two-pointer
 * matching: a hostile pattern or claim cannot make it backtrack exponentially.
 */
export function globMatches(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return pattern === value;
  let p = 0;
  let v = 0;
  let star = -1;
  let resume = 0;
  while (v < value.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === value[v]) {
      p++;
      v++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      resume = v;
    } else if (star !== -1) {
      p = star + 1;
      v = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

/**
 * Whether every claim a rule names is present in the token as a string matching its pattern.
 * Claims of other types never match (the caller refuses such tokens before matching).
 */
export function claimsMatch(patterns: ClaimPatterns, claims: Readonly<Record<string, unknown>>): boolean {
  for (const name in patterns) {
    const value = claims[name];
    if (typeof value !== 'string' || !globMatches(patterns[name], value)) return false;
  }
  return true;
}

/**
 * The claim names, among `names`, that the token carries with a type other than string (arrays,
 * numbers, booleans, objects, null): such a token is refused rather than matched, since an issuer
 * that writes a claim in an unexpected shape is not the issuer the rule was written for.
 */
export function claimsOfWrongType(names: Iterable<string>, claims: Readonly<Record<string, unknown>>): string[] {
  const wrong: string[] = [];
  for (const name of names) if (name in claims && typeof claims[name] !== 'string') wrong.push(name);
  return wrong;
}

function invalid(operation: string, field: string, message: string): DomainError {
  return new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: '${field}' ${message}`, { field });
}
