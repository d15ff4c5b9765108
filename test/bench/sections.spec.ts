import * as fs from 'node:fs';
import * as path from 'node:path';
import { replaceSections } from '../../bench/sections';

describe('bench/run.ts on a subset of benches (replaceSections)', () => {
  const page = [
    '# Benchmarks',
    '',
    'Machine of the last full run: x.',
    '',
    '## CA core (`bench/ca.bench.ts`)',
    '',
    'ca figures',
    '',
    '## HSM signing (`bench/hsm.bench.ts`)',
    '',
    'hsm figures',
    '',
  ].join('\n');

  it('replaces only the section of the bench that ran, keeping the header and the other sections', () => {
    const out = replaceSections(page, [
      { name: 'ca', markdown: '## CA core (`bench/ca.bench.ts`)\n\nnew ca figures\n' },
    ]);
    expect(out).toBe(page.replace('ca figures', 'new ca figures'));
  });

  it('replaces the last section up to the end of the page, finds a section by its bench file when the heading text changed, and appends a new one', () => {
    let out = replaceSections(page, [
      { name: 'hsm', markdown: '## HSM signing, renamed (`bench/hsm.bench.ts`)\n\nnew hsm\n' },
    ]);
    expect(out).toBe(
      page.replace(
        '## HSM signing (`bench/hsm.bench.ts`)\n\nhsm figures',
        '## HSM signing, renamed (`bench/hsm.bench.ts`)\n\nnew hsm',
      ),
    );
    out = replaceSections(out, [{ name: 'tsa', markdown: '## TSA (`bench/tsa.bench.ts`)\n\ntsa figures' }]);
    expect(out.endsWith('new hsm\n\n## TSA (`bench/tsa.bench.ts`)\n\ntsa figures\n')).toBe(true);
    expect(out.startsWith('# Benchmarks\n\nMachine of the last full run: x.\n\n## CA core')).toBe(true);
  });

  it('keeps every other section of the real docs/benchmarks.md byte for byte', () => {
    const doc = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'benchmarks.md'), 'utf8');
    const section =
      '## Signing with an OIDC ID token vs an `sgt_` token (`bench/workload-identity.bench.ts`)\n\nonly this\n';
    const out = replaceSections(doc, [{ name: 'workload-identity', markdown: section }]);
    const start = doc.indexOf('## Signing with an OIDC ID token');
    const next = doc.indexOf('\n## ', start);
    const before = doc.slice(0, start);
    const after = next < 0 ? '' : doc.slice(next + 1).replace(/\n+$/, '\n');
    expect(out).toBe(before + section + (after ? `\n${after}` : ''));
    // Run twice, same page.
    expect(replaceSections(out, [{ name: 'workload-identity', markdown: section }])).toBe(out);
  });
});
