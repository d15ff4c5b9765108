import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { softHsmTokenLockFile, TOKEN_LOCK_FILE_NAME } from './softhsm-token-lock';

describe(softHsmTokenLockFile.name, () => {
  const dir = mkdtempSync(join(tmpdir(), 'signet-token-lock-'));
  const tokenDir = mkdtempSync(join(dir, 'tokens-'));
  const conf = (text: string): NodeJS.ProcessEnv => {
    const file = join(dir, `softhsm2-${Math.random().toString(36).slice(2)}.conf`);
    writeFileSync(file, text);
    return { SOFTHSM2_CONF: file };
  };
  const SOFTHSM = '/usr/lib/softhsm/libsofthsm2.so';

  it('names a file inside the token directory of a file-backend SoftHSM2 configuration', () => {
    expect(
      softHsmTokenLockFile(
        SOFTHSM,
        conf(`# comment\ndirectories.tokendir = ${tokenDir}\nobjectstore.backend = file\n`),
      ),
    ).toBe(join(tokenDir, TOKEN_LOCK_FILE_NAME));
    expect(softHsmTokenLockFile(SOFTHSM, conf(`directories.tokendir=${tokenDir}\n`))).toBe(
      join(tokenDir, TOKEN_LOCK_FILE_NAME),
    ); // file is the default backend
  });

  it('names none for the database backend, another module, a commented-out or missing token directory, or an unreadable configuration', () => {
    expect(
      softHsmTokenLockFile(SOFTHSM, conf(`directories.tokendir = ${tokenDir}\nobjectstore.backend = db\n`)),
    ).toBeUndefined();
    expect(
      softHsmTokenLockFile('/opt/vendor/libvendorpkcs11.so', conf(`directories.tokendir = ${tokenDir}\n`)),
    ).toBeUndefined();
    expect(softHsmTokenLockFile(SOFTHSM, conf(`# directories.tokendir = ${tokenDir}\n`))).toBeUndefined();
    expect(softHsmTokenLockFile(SOFTHSM, conf(`directories.tokendir = ${join(dir, 'missing')}\n`))).toBeUndefined();
    expect(softHsmTokenLockFile(SOFTHSM, { SOFTHSM2_CONF: join(dir, 'no-such.conf') })).toBeUndefined();
  });
});
