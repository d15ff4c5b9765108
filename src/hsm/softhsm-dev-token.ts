import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as pkcs11js from 'pkcs11js';
import { type HsmLogger, silentLogger } from './hsm-logger';
import { setNativeEnvironmentVariable } from './native-environment';
import { padTokenLabel } from './pkcs11-api';
import { toPkcs11Error } from './pkcs11-errors';
import { Pkcs11Library } from './pkcs11-library';

const LINUX_MULTIARCH: Partial<Record<NodeJS.Architecture, string>> = {
  x64: 'x86_64-linux-gnu',
  arm64: 'aarch64-linux-gnu',
  arm: 'arm-linux-gnueabihf',
  ia32: 'i386-linux-gnu',
  ppc64: 'powerpc64le-linux-gnu',
  s390x: 's390x-linux-gnu',
};

/** Where distributions and package managers install SoftHSM2's PKCS#11 module. */
export function softHsmLibraryCandidates(
  platform: NodeJS.Platform = process.platform,
  arch: NodeJS.Architecture = process.arch,
): string[] {
  if (platform === 'darwin') {
    return [
      '/opt/homebrew/lib/softhsm/libsofthsm2.so', // Homebrew, Apple silicon
      '/opt/homebrew/opt/softhsm/lib/softhsm/libsofthsm2.so',
      '/usr/local/lib/softhsm/libsofthsm2.so', // Homebrew, Intel
      '/usr/local/opt/softhsm/lib/softhsm/libsofthsm2.so',
      '/opt/local/lib/softhsm/libsofthsm2.so', // MacPorts
    ];
  }
  const multiarch = LINUX_MULTIARCH[arch];
  return [
    '/usr/lib/softhsm/libsofthsm2.so', // Debian, Ubuntu
    ...(multiarch ? [`/usr/lib/${multiarch}/softhsm/libsofthsm2.so`] : []),
    '/usr/lib64/pkcs11/libsofthsm2.so', // Fedora, RHEL
    '/usr/lib64/softhsm/libsofthsm2.so',
    '/usr/lib/pkcs11/libsofthsm2.so', // Arch, Alpine
    '/usr/local/lib/softhsm/libsofthsm2.so', // built from source
  ];
}

export function findSoftHsmLibrary(): string | undefined {
  return softHsmLibraryCandidates().find((path) => existsSync(path));
}

export interface SoftHsmDevTokenOptions {
  /** Signet's data directory; the token lives under `<dataDir>/softhsm`. */
  dataDir: string;
  label: string;
  /** Defaults to findSoftHsmLibrary(). */
  modulePath?: string;
  logger?: HsmLogger;
}

export interface SoftHsmDevToken {
  modulePath: string;
  tokenLabel: string;
  /** User PIN, 0600. */
  pinFile: string;
  /** Security-officer PIN, 0600. */
  soPinFile: string;
  softhsmConf: string;
}

/**
 * Reads a PIN from a file. Failures name the file, never its content.
 */
export function readPinFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new Error(`cannot read PIN file ${path} (${code})`);
  }
  const pin = text.trim();
  if (pin === '') throw new Error(`PIN file ${path} is empty`);
  return pin;
}

/** Writes a secret atomically with mode 0600 (never world-readable, not even for a moment). */
function writeSecretFile(path: string, content: string): void {
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temporary, content, { mode: 0o600, flag: 'wx' });
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
}

function writeIfChanged(path: string, content: string, mode: number): void {
  if (existsSync(path) && readFileSync(path, 'utf8') === content) return;
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, content, { mode });
  renameSync(temporary, path);
}

function generatePin(): string {
  return randomBytes(18).toString('base64url');
}

/**
 * Initialises a token labelled `label` on a free slot through PKCS#11 (C_InitToken, then C_InitPIN
 * as security officer), so no PIN appears on a command line. Returns false when the token exists.
 */
export function initializeToken(library: Pkcs11Library, label: string, soPin: string, userPin: string): boolean {
  if (library.locateToken(label)) return false;
  const api = library.api;
  const free = api.C_GetSlotList(false).find((slot) => {
    try {
      return (api.C_GetTokenInfo(slot).flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0;
    } catch {
      return false; // no token in this slot
    }
  });
  if (!free) throw new Error(`hsm: no free slot to initialise token '${label}' in ${library.modulePath}`);
  const fail = (err: unknown, step: string): Error =>
    new Error(
      `hsm: initialising token '${label}' failed at ${step}: ${toPkcs11Error(err, step)?.ckr ?? (err as Error).message}`,
    );
  try {
    api.C_InitToken(free, soPin, padTokenLabel(label));
  } catch (err) {
    throw fail(err, 'C_InitToken');
  }
  // SoftHSM2 moves an initialised token to a new slot id: find it again by label.
  const token = library.locateToken(label);
  if (!token) throw new Error(`hsm: token '${label}' not found after C_InitToken`);
  const session = api.C_OpenSession(token.slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  try {
    api.C_Login(session, pkcs11js.CKU_SO, soPin);
    api.C_InitPIN(session, userPin);
    api.C_Logout(session);
  } catch (err) {
    throw fail(err, 'C_InitPIN');
  } finally {
    try {
      api.C_CloseSession(session);
    } catch {
      // nothing to release
    }
  }
  return true;
}

/**
 * Development and test HSM: a SoftHSM2 token under `<dataDir>/softhsm`, created on first start and
 * reused afterwards (same token, same PIN). Sets SOFTHSM2_CONF for this process — it must be set
 * before the module's C_Initialize, and only one SoftHSM2 configuration can be live per process.
 */
export async function ensureSoftHsmDevToken(options: SoftHsmDevTokenOptions): Promise<SoftHsmDevToken> {
  const logger = options.logger ?? silentLogger;
  const modulePath = options.modulePath ?? findSoftHsmLibrary();
  if (!modulePath) {
    throw new Error(
      'SoftHSM2 not found: install it (apt install softhsm2, dnf install softhsm, brew install softhsm) or configure a PKCS#11 module',
    );
  }
  padTokenLabel(options.label); // validates 1..32 bytes
  const root = join(resolve(options.dataDir), 'softhsm');
  const tokenDir = join(root, 'tokens');
  mkdirSync(tokenDir, { recursive: true, mode: 0o700 });
  const softhsmConf = join(root, 'softhsm2.conf');
  writeIfChanged(
    softhsmConf,
    `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`,
    0o600,
  );

  const previousConf = process.env.SOFTHSM2_CONF;
  if (previousConf !== undefined && previousConf !== softhsmConf && Pkcs11Library.referenceCount(modulePath) > 0) {
    throw new Error(
      `SoftHSM2 is already in use in this process with ${previousConf}; close its key store before switching to ${softhsmConf}`,
    );
  }
  await setNativeEnvironmentVariable('SOFTHSM2_CONF', softhsmConf);

  const pinFile = join(root, 'user.pin');
  const soPinFile = join(root, 'so.pin');
  // Several processes may start on one data dir at once (replicas, a CLI next to the server): one
  // creates the token and its PINs while the others wait, then find it.
  await withInitLock(join(root, '.init.lock'), () =>
    initializeDevToken(modulePath, options.label, tokenDir, pinFile, soPinFile, logger),
  );
  return { modulePath, tokenLabel: options.label, pinFile, soPinFile, softhsmConf };
}

function initializeDevToken(
  modulePath: string,
  label: string,
  tokenDir: string,
  pinFile: string,
  soPinFile: string,
  logger: HsmLogger,
): void {
  const library = Pkcs11Library.acquire(modulePath, logger);
  try {
    if (library.locateToken(label) || tokenOnDisk(tokenDir)) {
      if (!existsSync(pinFile))
        throw new Error(`token '${label}' exists in ${tokenDir} but its PIN file ${pinFile} is missing`);
      readPinFile(pinFile);
    } else {
      // PINs are written before the token exists, so a crash in between never loses them.
      if (!existsSync(pinFile)) writeSecretFile(pinFile, `${generatePin()}\n`);
      if (!existsSync(soPinFile)) writeSecretFile(soPinFile, `${generatePin()}\n`);
      initializeToken(library, label, readPinFile(soPinFile), readPinFile(pinFile));
      logger.log(`hsm: SoftHSM2 token '${label}' initialised in ${dirname(tokenDir)}`);
    }
  } finally {
    library.release();
  }
}

/**
 * Whether the token directory already holds a token. Signet's data dir holds one token, so a
 * token on disk is never created twice, even when PKCS#11 does not list it at this instant: another
 * process may be rewriting its token file (a login does), which a reader can catch half-written —
 * that happened in CI with four processes starting at once and made a second token.
 */
function tokenOnDisk(tokenDir: string): boolean {
  try {
    return readdirSync(tokenDir).some((entry) => existsSync(join(tokenDir, entry, 'token.object')));
  } catch {
    return false;
  }
}

const LOCK_WAIT_MS = 60_000;

/** An exclusive lock file holding the owner's pid; a lock left by a dead process is taken over. */
async function withInitLock<T>(lockFile: string, work: () => T): Promise<T> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  // The lock appears with its owner's pid already in it (written aside, then hard-linked into
  // place, which fails if it exists): a lock file created empty and written afterwards looks
  // ownerless to a process reading it in between, which then takes it over (two tokens, seen in CI).
  const claim = `${lockFile}.${process.pid}`;
  writeFileSync(claim, String(process.pid), { mode: 0o600 });
  try {
    for (;;) {
      try {
        linkSync(claim, lockFile);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const seen = readFileSyncSafe(lockFile);
        const owner = Number(seen);
        // (An empty lock can only be an older Signet's, caught between creating and writing it.)
        const stale =
          seen === '' ? Date.now() - mtimeMs(lockFile) > EMPTY_LOCK_STALE_MS : !owner || !processAlive(owner);
        if (stale) {
          // Left by a dead process. Removed only if it still names that process (narrows the race
          // with another process taking over the same stale lock).
          if (readFileSyncSafe(lockFile) === seen) rmSync(lockFile, { force: true });
          continue;
        }
        if (Date.now() > deadline)
          throw new Error(
            `hsm: another process (pid ${owner}) has been creating the SoftHSM2 token for over ${LOCK_WAIT_MS / 1000}s (${lockFile})`,
          );
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } finally {
    rmSync(claim, { force: true });
  }
  try {
    return work();
  } finally {
    rmSync(lockFile, { force: true });
  }
}

const EMPTY_LOCK_STALE_MS = 5_000;

function mtimeMs(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return Date.now();
  }
}

function readFileSyncSafe(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
