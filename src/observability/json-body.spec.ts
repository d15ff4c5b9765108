import { jsonDepthExceeds } from './json-body';

describe('jsonDepthExceeds', () => {
  it('counts array and object nesting and stops at the limit', () => {
    expect(jsonDepthExceeds('{"a":[1,{"b":2}]}', 3)).toBe(false);
    expect(jsonDepthExceeds('{"a":[1,{"b":[2]}]}', 3)).toBe(true);
    expect(jsonDepthExceeds('['.repeat(100_000) + ']'.repeat(100_000), 64)).toBe(true);
    expect(jsonDepthExceeds('{"a":'.repeat(64) + '1' + '}'.repeat(64), 64)).toBe(false);
  });

  it('ignores brackets inside strings, escaped quotes included', () => {
    expect(jsonDepthExceeds(JSON.stringify({ a: '[[[[[[[[', b: 'say \\"{{{{{{\\"' }), 2)).toBe(false);
    expect(jsonDepthExceeds(JSON.stringify(['"', '\\', '[[[[']), 1)).toBe(false);
  });
});
