import fc from 'fast-check';
import { DomainError } from '../common/errors';
import { claimsMatch, claimsOfWrongType, globMatches, parseClaimPatterns } from './claim-rules';

describe('claim rules', () => {
  it('matches exact strings exactly and globs with * as any run of characters', () => {
    expect(globMatches('acme/app', 'acme/app')).toBe(true);
    expect(globMatches('acme/app', 'acme/app2')).toBe(false);
    expect(globMatches('acme/*', 'acme/app')).toBe(true);
    expect(globMatches('acme/*', 'acme/')).toBe(true);
    expect(globMatches('acme/*', 'other/app')).toBe(false);
    expect(globMatches('refs/heads/release-*', 'refs/heads/release-1.2')).toBe(true);
    expect(globMatches('refs/heads/release-*', 'refs/tags/release-1.2')).toBe(false);
    expect(
      globMatches('*/.github/workflows/release.yml@*', 'acme/app/.github/workflows/release.yml@refs/heads/main'),
    ).toBe(true);
    expect(globMatches('a*b*c', 'aXbYc')).toBe(true);
    expect(globMatches('a*b*c', 'aXbY')).toBe(false);
    // Nothing but * is special.
    expect(globMatches('acme/ap?', 'acme/app')).toBe(false);
    expect(globMatches('acme/[a]pp', 'acme/app')).toBe(false);
  });

  it('agrees with an anchored regular expression on random patterns and values', () => {
    const alphabet = fc.constantFrom('a', 'b', '*', '/', '.');
    fc.assert(
      fc.property(
        fc.string({ unit: alphabet, maxLength: 12 }),
        fc.string({ unit: fc.constantFrom('a', 'b', '/', '.'), maxLength: 16 }),
        (pattern, value) => {
          const regex = new RegExp(
            `^${pattern
              .split('*')
              .map((part) => part.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))
              .join('.*')}$`,
            's',
          );
          expect(globMatches(pattern, value)).toBe(regex.test(value));
        },
      ),
    );
  });

  it('stays linear on a pattern built to make backtracking matchers explode', () => {
    const pattern = `${'a*'.repeat(200)}b`;
    const started = process.hrtime.bigint();
    expect(globMatches(pattern, 'a'.repeat(5000))).toBe(false);
    // Seconds, not hours: a backtracking matcher never finishes this.
    expect(Number(process.hrtime.bigint() - started) / 1e9).toBeLessThan(20);
  });

  it('requires every named claim to be a matching string', () => {
    const patterns = { repository: 'acme/app', ref: 'refs/heads/main', environment: 'prod' };
    expect(
      claimsMatch(patterns, { repository: 'acme/app', ref: 'refs/heads/main', environment: 'prod', extra: 1 }),
    ).toBe(true);
    expect(claimsMatch(patterns, { repository: 'acme/app', ref: 'refs/heads/main' })).toBe(false);
    expect(claimsMatch(patterns, { repository: ['acme/app'], ref: 'refs/heads/main', environment: 'prod' })).toBe(
      false,
    );
    expect(claimsMatch({ ref_protected: 'true' }, { ref_protected: true })).toBe(false);
  });

  it('names the claims of a type other than string', () => {
    expect(
      claimsOfWrongType(['repository', 'ref', 'environment', 'job'], {
        repository: ['acme/app'],
        ref: 7,
        environment: { name: 'prod' },
        other: [],
      }),
    ).toEqual(['repository', 'ref', 'environment']);
    expect(claimsOfWrongType(['ref'], { ref: null })).toEqual(['ref']);
    expect(claimsOfWrongType(['ref'], { ref: 'refs/heads/main' })).toEqual([]);
  });

  it('refuses rule claims that are empty, not strings, reserved, or match-anything on a claim other than sub', () => {
    const refuse = (value: unknown) => expect(() => parseClaimPatterns(value, 'createRule')).toThrow(DomainError);
    refuse({});
    refuse([]);
    refuse(null);
    refuse({ repository: 7 });
    refuse({ repository: '' });
    refuse({ repository: ['acme/app'] });
    refuse({ aud: 'signet' });
    refuse({ iss: 'https://token.actions.githubusercontent.com' });
    refuse({ repository: '*' });
    refuse({ 'bad name': 'x' });
    expect(parseClaimPatterns({ sub: '*' }, 'createRule')).toEqual({ sub: '*' });
    expect(parseClaimPatterns({ repository: 'acme/*', ref: 'refs/heads/main' }, 'createRule')).toEqual({
      repository: 'acme/*',
      ref: 'refs/heads/main',
    });
  });
});
