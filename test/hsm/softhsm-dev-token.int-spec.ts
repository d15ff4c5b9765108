import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { Pkcs11Library } from '../../src/hsm/pkcs11-library';
import { ensureSoftHsmDevToken, readPinFile } from '../../src/hsm/softhsm-dev-token';
import { sample, verifyWithNode } from './hsm-test-kit';

describe(ensureSoftHsmDevToken.name, () => {
  const dataDirs: string[] = [];
  const newDataDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'signet-devtoken-'));
    dataDirs.push(dir);
    return dir;
  };

  afterAll(() => {
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  });

  async function openDevStore(dataDir: string): Promise<Pkcs11KeyStore> {
    const dev = await ensureSoftHsmDevToken({ dataDir, label: 'signet-dev' });
    const store = new Pkcs11KeyStore({
      modulePath: dev.modulePath,
      tokenLabel: dev.tokenLabel,
      pin: readPinFile(dev.pinFile),
      poolSize: 2,
    });
    await store.open();
    return store;
  }

  it('creates the token under <dataDir>/softhsm with 0600 PIN files and a file-backed config', async () => {
    const dataDir = newDataDir();
    const dev = await ensureSoftHsmDevToken({ dataDir, label: 'signet-dev' });
    expect(dev).toMatchObject({
      tokenLabel: 'signet-dev',
      pinFile: join(dataDir, 'softhsm', 'user.pin'),
      soPinFile: join(dataDir, 'softhsm', 'so.pin'),
      softhsmConf: join(dataDir, 'softhsm', 'softhsm2.conf'),
    });
    expect(process.env.SOFTHSM2_CONF).toBe(dev.softhsmConf);
    // jest hands each test file a copy of process.env; the module's getenv() reads the real one,
    // which a child process without an explicit env inherits.
    expect(
      execFileSync(process.execPath, ['-e', 'process.stdout.write(process.env.SOFTHSM2_CONF ?? "")'], {
        encoding: 'utf8',
      }),
    ).toBe(dev.softhsmConf);
    for (const file of [dev.pinFile, dev.soPinFile]) {
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readPinFile(file).length).toBeGreaterThanOrEqual(20);
    }
    expect(readPinFile(dev.pinFile)).not.toBe(readPinFile(dev.soPinFile));
    const conf = readFileSync(dev.softhsmConf, 'utf8');
    expect(conf).toContain(`directories.tokendir = ${join(dataDir, 'softhsm', 'tokens')}`);
    expect(conf).toContain('objectstore.backend = file');
    expect(conf).toContain('log.level = ERROR');
    expect(Pkcs11Library.referenceCount(dev.modulePath)).toBe(0);
  });

  it('is idempotent across restarts: same token, same PIN, keys still there', async () => {
    const dataDir = newDataDir();
    const first = await openDevStore(dataDir);
    const key = await first.createKey({ spec: 'EC-256', label: 'survives-restart' });
    await first.close();
    const pin = readFileSync(join(dataDir, 'softhsm', 'user.pin'), 'utf8');

    const second = await openDevStore(dataDir);
    try {
      expect(readFileSync(join(dataDir, 'softhsm', 'user.pin'), 'utf8')).toBe(pin);
      const s = sample('EC-256');
      expect(
        verifyWithNode('EC-256', key.publicKeySpki, s, await second.sign(key.uri, s.digest, { hash: s.hash })),
      ).toBe(true);
      expect((await second.listKeys()).map((k) => k.label)).toEqual(['survives-restart']);
    } finally {
      await second.close();
    }
  });

  it('refuses to switch SoftHSM2 configuration while a store uses another one', async () => {
    const store = await openDevStore(newDataDir());
    try {
      await expect(ensureSoftHsmDevToken({ dataDir: newDataDir(), label: 'signet-dev' })).rejects.toThrow(
        /already in use in this process/,
      );
    } finally {
      await store.close();
    }
  });

  it('fails clearly when the token exists but its PIN file is gone', async () => {
    const dataDir = newDataDir();
    const dev = await ensureSoftHsmDevToken({ dataDir, label: 'signet-dev' });
    unlinkSync(dev.pinFile);
    await expect(ensureSoftHsmDevToken({ dataDir, label: 'signet-dev' })).rejects.toThrow(`token 'signet-dev' exists`);
  });
});
