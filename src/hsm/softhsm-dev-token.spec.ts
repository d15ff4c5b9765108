import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPinFile, softHsmLibraryCandidates } from './softhsm-dev-token';

describe('softhsm-dev-token', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'signet-pin-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  describe(readPinFile.name, () => {
    it('returns the PIN without the trailing newline', () => {
      writeFileSync(join(dir, 'ok.pin'), 'Zm9vYmFy-1234\n');
      expect(readPinFile(join(dir, 'ok.pin'))).toBe('Zm9vYmFy-1234');
    });

    it('fails with one line naming the file when it is missing', () => {
      expect(() => readPinFile(join(dir, 'missing.pin'))).toThrow(
        `cannot read PIN file ${join(dir, 'missing.pin')} (ENOENT)`,
      );
    });

    it('fails with one line naming the file when it is empty', () => {
      writeFileSync(join(dir, 'empty.pin'), ' \n');
      expect(() => readPinFile(join(dir, 'empty.pin'))).toThrow(`PIN file ${join(dir, 'empty.pin')} is empty`);
    });

    it('fails with one line naming the path when it is not a file', () => {
      expect(() => readPinFile(dir)).toThrow(`cannot read PIN file ${dir} (EISDIR)`);
    });
  });

  describe(softHsmLibraryCandidates.name, () => {
    it('knows the Debian/Ubuntu paths, multiarch included', () => {
      expect(softHsmLibraryCandidates('linux', 'x64')).toEqual(
        expect.arrayContaining(['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so']),
      );
      expect(softHsmLibraryCandidates('linux', 'arm64')).toContain('/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so');
    });

    it('knows Homebrew (Apple silicon and Intel) and MacPorts on macOS', () => {
      expect(softHsmLibraryCandidates('darwin', 'arm64')).toEqual(
        expect.arrayContaining([
          '/opt/homebrew/lib/softhsm/libsofthsm2.so',
          '/usr/local/lib/softhsm/libsofthsm2.so',
          '/opt/local/lib/softhsm/libsofthsm2.so',
        ]),
      );
    });
  });
});
