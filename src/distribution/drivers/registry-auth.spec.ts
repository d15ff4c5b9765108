import { covers, parseWwwAuthenticate, union } from './registry-auth';

describe('registry auth helpers', () => {
  it('parses a distribution bearer challenge', () => {
    expect(
      parseWwwAuthenticate([
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:signet/truststore:pull,push"',
      ]),
    ).toEqual([
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.example.com/token',
          service: 'registry.example.com',
          scope: 'repository:signet/truststore:pull,push',
        },
      },
    ]);
  });

  it('parses several challenges, in one value or several, and quoted escapes', () => {
    expect(
      parseWwwAuthenticate(['Basic realm="a \\"b\\"", Bearer realm="https://r/t",error="invalid_token"', 'Negotiate']),
    ).toEqual([
      { scheme: 'basic', params: { realm: 'a "b"' } },
      { scheme: 'bearer', params: { realm: 'https://r/t', error: 'invalid_token' } },
      { scheme: 'negotiate', params: {} },
    ]);
  });

  it('never throws on garbage', () => {
    for (const value of ['', '=', '"', 'Bearer realm=', 'Bearer ,,,', '\u0000\u0001'])
      expect(() => parseWwwAuthenticate([value])).not.toThrow();
  });

  it('a pull,push token covers pull on the same repository only', () => {
    expect(covers(['repository:a/b:pull,push'], ['repository:a/b:pull'])).toBe(true);
    expect(covers(['repository:a/b:pull'], ['repository:a/b:pull,push'])).toBe(false);
    expect(covers(['repository:a/b:pull,push'], ['repository:a/c:pull'])).toBe(false);
    expect(covers(['repository:a/b:*'], ['repository:a/b:push'])).toBe(true);
  });

  it('merges the actions of one resource', () => {
    expect(union(['repository:a/b:pull'], ['repository:a/b:push', 'repository:c:pull'])).toEqual([
      'repository:a/b:pull,push',
      'repository:c:pull',
    ]);
  });
});
