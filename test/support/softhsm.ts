import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setNativeEnvironmentVariable } from '../../src/hsm/native-environment';
import { Pkcs11Library } from '../../src/hsm/pkcs11-library';
import { findSoftHsmLibrary, initializeToken } from '../../src/hsm/softhsm-dev-token';
import { createOpenCryptokiToken, testHsm } from './opencryptoki';

/** A throw-away SoftHSM2 token for one test file. */
export interface TestToken {
  modulePath: string;
  tokenLabel: string;
  pin: string;
  soPin: string;
  softhsmConf: string;
  /** The token directory SoftHSM2 reads (shared by the tokens of this process). */
  tokenDir: string;
}

const ROOT_PREFIX = 'signet-softhsm-';

export function softHsmModulePath(): string {
  const path = findSoftHsmLibrary();
  if (!path) throw new Error('SoftHSM2 is required for the HSM tests (apt install softhsm2)');
  return path;
}

/** Removes token directories left by test processes that no longer run. */
function sweepStaleRoots(): void {
  for (const name of readdirSync(tmpdir())) {
    const match = new RegExp(`^${ROOT_PREFIX}(\\d+)$`).exec(name);
    if (!match || Number(match[1]) === process.pid) continue;
    try {
      process.kill(Number(match[1]), 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH')
        rmSync(join(tmpdir(), name), { recursive: true, force: true });
    }
  }
}

/**
 * SoftHSM2 reads SOFTHSM2_CONF once, in C_Initialize, and a jest worker runs many test files in one
 * process: so every test file of a process puts its tokens in the same per-process directory, and
 * a test file that leaks an initialised module cannot hide the next file's token. The directory is
 * named after the pid; later runs sweep those of dead processes.
 */
async function processSoftHsmConf(): Promise<{ conf: string; tokenDir: string }> {
  const root = join(tmpdir(), `${ROOT_PREFIX}${process.pid}`);
  const tokenDir = join(root, 'tokens');
  const conf = join(root, 'softhsm2.conf');
  if (!existsSync(conf)) {
    sweepStaleRoots();
    mkdirSync(tokenDir, { recursive: true, mode: 0o700 });
    writeFileSync(conf, `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\n`, {
      mode: 0o600,
    });
  }
  // jest gives each test file a copy of process.env: this reaches the real environment.
  await setNativeEnvironmentVariable('SOFTHSM2_CONF', conf);
  return { conf, tokenDir };
}

/**
 * Creates a fresh token with random PINs; its label starts with `prefix`. SoftHSM2 by default;
 * openCryptoki's soft token when SIGNET_TEST_HSM=opencryptoki (test/support/opencryptoki.ts).
 */
export async function createTestToken(prefix = 'test'): Promise<TestToken> {
  if (testHsm() === 'opencryptoki') return createOpenCryptokiToken();
  const modulePath = softHsmModulePath();
  const { conf, tokenDir } = await processSoftHsmConf();
  const tokenLabel = `${prefix.slice(0, 22)}-${randomBytes(4).toString('hex')}`;
  const pin = randomBytes(12).toString('base64url');
  const soPin = randomBytes(12).toString('base64url');
  const library = Pkcs11Library.acquire(modulePath);
  try {
    initializeToken(library, tokenLabel, soPin, pin);
  } finally {
    library.release();
  }
  return { modulePath, tokenLabel, pin, soPin, softhsmConf: conf, tokenDir };
}
