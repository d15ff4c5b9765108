import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pkcs11js from 'pkcs11js';
import { padTokenLabel } from '../../src/hsm/pkcs11-api';
import { toPkcs11Error } from '../../src/hsm/pkcs11-errors';
import { Pkcs11Library } from '../../src/hsm/pkcs11-library';
import type { TestToken } from './softhsm';

/**
 * openCryptoki's software token as the second PKCS#11 implementation of the test matrix
 * (SIGNET_TEST_HSM=opencryptoki). openCryptoki 3.8 compiles its paths in: the slot daemon
 * `pkcsslotd` reads /etc/opencryptoki/opencryptoki.conf, the soft token keeps its files in
 * /var/lib/opencryptoki/swtok and its locks in /var/lock/opencryptoki; no variable moves them. So
 * the run uses the system token: the global setup wipes it to its factory state (SO PIN 87654321),
 * starts the daemon and records that this run owns it; the teardown stops the daemon and wipes the
 * token again, leaving the machine as it found it. A daemon left by a run that died is recognised
 * by the state file and stopped; one this harness did not start is never touched (the run fails).
 */
export const OPENCRYPTOKI_SLOT_DAEMON = '/usr/sbin/pkcsslotd';
const SWTOK_DIR = '/var/lib/opencryptoki/swtok';
const LOCK_DIRS = ['/var/lock/opencryptoki', '/var/lock/opencryptoki/swtok'];
const DAEMON_PID_FILE = '/var/run/pkcsslotd.pid';
const DAEMON_SOCKET = '/var/run/pkcsslotd.socket';
const STATE_FILE = join(tmpdir(), 'signet-opencryptoki-daemon.json');
/** The soft token's factory SO PIN; the harness never changes it (the token is wiped after the run). */
export const OPENCRYPTOKI_FACTORY_SO_PIN = '87654321';
/** openCryptoki's soft token takes PINs of 4 to 8 bytes. */
export const OPENCRYPTOKI_MAX_PIN_LENGTH = 8;

const MODULE_CANDIDATES = [
  '/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so',
  '/usr/lib/aarch64-linux-gnu/pkcs11/libopencryptoki.so',
  '/usr/lib/opencryptoki/libopencryptoki.so',
  '/usr/lib64/opencryptoki/libopencryptoki.so',
  '/usr/lib64/pkcs11/libopencryptoki.so',
];

/** Which PKCS#11 implementation the HSM suites run against (SIGNET_TEST_HSM; SoftHSM2 by default). */
export function testHsm(env: NodeJS.ProcessEnv = process.env): 'softhsm' | 'opencryptoki' {
  const value = env.SIGNET_TEST_HSM ?? 'softhsm';
  if (value !== 'softhsm' && value !== 'opencryptoki') throw new Error(`SIGNET_TEST_HSM must be 'softhsm' or 'opencryptoki', not '${value}'`);
  return value;
}

export function openCryptokiModulePath(): string {
  const path = MODULE_CANDIDATES.find((candidate) => existsSync(candidate));
  if (!path) throw new Error('openCryptoki is required for SIGNET_TEST_HSM=opencryptoki (apt install opencryptoki): libopencryptoki.so not found');
  return path;
}

/** Running, and not a zombie (a stopped daemon whose parent has not reaped it yet). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function runningDaemonPid(): number | undefined {
  if (!existsSync(DAEMON_PID_FILE)) return undefined;
  const pid = Number.parseInt(readFileSync(DAEMON_PID_FILE, 'utf8').trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return undefined;
  try {
    if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('pkcsslotd')) return undefined;
  } catch {
    return undefined;
  }
  return pid;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function waitUntil(condition: () => boolean, what: string, timeoutMs = 10_000): void {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`openCryptoki: timed out waiting for ${what}`);
    sleepSync(20);
  }
}

function stopDaemon(pid: number): void {
  process.kill(pid, 'SIGTERM');
  waitUntil(() => !alive(pid), `pkcsslotd (pid ${pid}) to stop`);
}

/** Back to the factory state: no token label, no PINs, no objects (pkcsslotd must not be running). */
function wipeSoftToken(): void {
  if (!existsSync(SWTOK_DIR)) return;
  for (const name of readdirSync(SWTOK_DIR)) {
    const path = join(SWTOK_DIR, name);
    if (name === 'TOK_OBJ' && statSync(path).isDirectory()) {
      for (const object of readdirSync(path)) rmSync(join(path, object), { recursive: true, force: true });
    } else {
      rmSync(path, { recursive: true, force: true });
    }
  }
}

/**
 * Global setup: wipes the soft token and starts pkcsslotd. Throws when openCryptoki is missing or
 * cannot start (the matrix entry then fails: it never skips).
 */
export function startOpenCryptoki(): void {
  openCryptokiModulePath();
  if (!existsSync(OPENCRYPTOKI_SLOT_DAEMON)) throw new Error(`openCryptoki: ${OPENCRYPTOKI_SLOT_DAEMON} not found (apt install opencryptoki)`);
  const running = runningDaemonPid();
  if (running !== undefined) {
    const state = existsSync(STATE_FILE) ? (JSON.parse(readFileSync(STATE_FILE, 'utf8')) as { daemonPid: number; ownerPid: number }) : undefined;
    if (state?.daemonPid !== running || alive(state.ownerPid)) {
      throw new Error(`openCryptoki: pkcsslotd already runs (pid ${running}) and this test run did not start it; stop it first`);
    }
    // Left by a test run that died before its teardown.
    stopDaemon(running);
  }
  // /var/lock is a tmpfs: after a reboot the package's lock directories are gone.
  for (const dir of LOCK_DIRS) {
    if (!existsSync(dir)) {
      mkdirSync(dir, { recursive: true, mode: 0o770 });
      spawnSync('chgrp', ['pkcs11', dir]);
    }
  }
  wipeSoftToken();
  rmSync(DAEMON_SOCKET, { force: true });
  // pkcsslotd forks into the background and writes its pid file.
  execFileSync(OPENCRYPTOKI_SLOT_DAEMON, { stdio: 'pipe', timeout: 10_000 });
  waitUntil(() => runningDaemonPid() !== undefined && existsSync(DAEMON_SOCKET), 'pkcsslotd to start');
  writeFileSync(STATE_FILE, JSON.stringify({ daemonPid: runningDaemonPid(), ownerPid: process.pid }));
}

/** Global teardown: stops the daemon this run started and wipes the token. */
export function stopOpenCryptoki(): void {
  if (!existsSync(STATE_FILE)) return;
  const state = JSON.parse(readFileSync(STATE_FILE, 'utf8')) as { daemonPid: number; ownerPid: number };
  if (state.ownerPid !== process.pid) return;
  if (runningDaemonPid() === state.daemonPid) stopDaemon(state.daemonPid);
  wipeSoftToken();
  rmSync(STATE_FILE, { force: true });
}

/** A random PIN openCryptoki accepts (at most 8 bytes). */
export function openCryptokiPin(): string {
  return randomBytes(6).toString('base64url');
}

/**
 * openCryptoki has one soft token, not a free slot per token: a test file gets a "fresh" token by
 * re-initialising it (C_InitToken destroys its objects) under a new label and a new user PIN. Test
 * files run one after another (--runInBand), each closing its key stores first.
 */
export function createOpenCryptokiToken(prefix = 'test'): TestToken {
  const modulePath = openCryptokiModulePath();
  const tokenLabel = `${prefix.slice(0, 22)}-${randomBytes(4).toString('hex')}`;
  const pin = openCryptokiPin();
  const soPin = OPENCRYPTOKI_FACTORY_SO_PIN;
  const library = Pkcs11Library.acquire(modulePath);
  const step = (name: string, body: () => void): void => {
    try {
      body();
    } catch (err) {
      throw new Error(`openCryptoki: initialising token '${tokenLabel}' failed at ${name}: ${toPkcs11Error(err, name)?.ckr ?? (err as Error).message}`);
    }
  };
  try {
    const api = library.api;
    const slot = api.C_GetSlotList(true).find((s) => api.C_GetTokenInfo(s).model.trim() === 'IBM SoftTok');
    if (slot === undefined) throw new Error('openCryptoki: no soft token slot (is pkcsslotd running, with slot 3 = libpkcs11_sw.so?)');
    step('C_InitToken', () => api.C_InitToken(slot, soPin, padTokenLabel(tokenLabel)));
    const session = api.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      step('C_Login', () => api.C_Login(session, pkcs11js.CKU_SO, soPin));
      step('C_InitPIN', () => api.C_InitPIN(session, pin));
      api.C_Logout(session);
    } finally {
      api.C_CloseSession(session);
    }
  } finally {
    library.release();
  }
  return { modulePath, tokenLabel, pin, soPin, softhsmConf: '', tokenDir: SWTOK_DIR };
}
