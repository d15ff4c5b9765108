import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestToken } from './softhsm';

/**
 * openCryptoki's software token as the second PKCS#11 implementation of the test matrix
 * (SIGNET_TEST_HSM=opencryptoki). openCryptoki 3.8 compiles its paths in: the slot daemon
 * `pkcsslotd` reads /etc/opencryptoki/opencryptoki.conf, the soft token keeps its files in
 * /var/lib/opencryptoki/swtok and its locks in /var/lock/opencryptoki; no variable moves them. So
 * the run uses the system token: the global setup wipes it to its factory state (SO PIN 87654321),
 * starts the daemon, records that this run owns it and initialises the token once for the run;
 * the teardown stops the daemon and wipes the token again, leaving the machine as it found it. A daemon left by a run that died is recognised
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

interface DaemonState {
  daemonPid: number;
  /** The jest process whose global setup started it. */
  ownerPid: number;
  shmIds: string[];
}

/** Which PKCS#11 implementation the HSM suites run against (SIGNET_TEST_HSM; SoftHSM2 by default). */
export function testHsm(env: NodeJS.ProcessEnv = process.env): 'softhsm' | 'opencryptoki' {
  const value = env.SIGNET_TEST_HSM ?? 'softhsm';
  if (value !== 'softhsm' && value !== 'opencryptoki')
    throw new Error(`SIGNET_TEST_HSM must be 'softhsm' or 'opencryptoki', not '${value}'`);
  return value;
}

export function openCryptokiModulePath(): string {
  const path = MODULE_CANDIDATES.find((candidate) => existsSync(candidate));
  if (!path)
    throw new Error(
      'openCryptoki is required for SIGNET_TEST_HSM=opencryptoki (apt install opencryptoki): libopencryptoki.so not found',
    );
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

/**
 * pkcsslotd ignores SIGTERM while a process it serves is still attached (a test file that leaked
 * an initialised module keeps the jest process attached until it exits): then SIGKILL, and its
 * shared memory is removed by id (freed once the last process detaches).
 */
function stopDaemon(pid: number, shmIds: string[] = []): void {
  process.kill(pid, 'SIGTERM');
  try {
    waitUntil(() => !alive(pid), `pkcsslotd (pid ${pid}) to stop`, 5_000);
  } catch {
    process.kill(pid, 'SIGKILL');
    waitUntil(() => !alive(pid), `pkcsslotd (pid ${pid}) to die`);
  }
  for (const id of shmIds) spawnSync('ipcrm', ['-m', id]);
  rmSync(DAEMON_SOCKET, { force: true });
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
  if (!existsSync(OPENCRYPTOKI_SLOT_DAEMON))
    throw new Error(`openCryptoki: ${OPENCRYPTOKI_SLOT_DAEMON} not found (apt install opencryptoki)`);
  const running = runningDaemonPid();
  if (running !== undefined) {
    const state = existsSync(STATE_FILE) ? (JSON.parse(readFileSync(STATE_FILE, 'utf8')) as DaemonState) : undefined;
    if (state?.daemonPid !== running || alive(state.ownerPid)) {
      throw new Error(
        `openCryptoki: pkcsslotd already runs (pid ${running}) and this test run did not start it; stop it first`,
      );
    }
    // Left by a test run that died before its teardown.
    stopDaemon(running, state.shmIds);
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
  const daemonPid = runningDaemonPid() as number;
  writeFileSync(
    STATE_FILE,
    JSON.stringify({ daemonPid, ownerPid: process.pid, shmIds: daemonSharedMemory(daemonPid) }),
  );
  initializeRunToken();
}

/** System V shared memory segments the daemon created (its slot table), from /proc/sysvipc/shm. */
function daemonSharedMemory(pid: number): string[] {
  const rows = readFileSync('/proc/sysvipc/shm', 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((row) => row.trim().split(/\s+/));
  // Columns: key shmid perms size cpid lpid nattch …
  return rows.filter((row) => Number(row[4]) === pid).map((row) => row[1]);
}

/** Global teardown: stops the daemon this run started and wipes the token. */
export function stopOpenCryptoki(): void {
  if (!existsSync(STATE_FILE)) return;
  const state = JSON.parse(readFileSync(STATE_FILE, 'utf8')) as DaemonState;
  if (state.ownerPid !== process.pid) return;
  if (runningDaemonPid() === state.daemonPid) stopDaemon(state.daemonPid, state.shmIds);
  wipeSoftToken();
  rmSync(STATE_FILE, { force: true });
}

/** A random PIN openCryptoki accepts (at most 8 bytes). */
export function openCryptokiPin(): string {
  return randomBytes(6).toString('base64url');
}

/** The soft token's slot, from `pkcsconf -t` (slot 3 in Debian's configuration). */
function softTokenSlot(): string {
  const listing = execFileSync('pkcsconf', ['-t'], { encoding: 'utf8' });
  const match = /Token #(\d+) Info:(?:(?!Token #)[\s\S])*?Model: IBM SoftTok/.exec(listing);
  if (!match) throw new Error(`openCryptoki: no soft token (IBM SoftTok) in pkcsconf -t:\n${listing}`);
  return match[1];
}

/**
 * Initialises the wiped soft token once for the run with pkcsconf (no prompts: the label on stdin,
 * PINs by flag), in a child process: the test process itself never holds the module from here,
 * and openCryptoki refuses C_InitToken while any session of the process exists.
 */
function initializeRunToken(): void {
  const slot = softTokenSlot();
  const label = `signet-${randomBytes(4).toString('hex')}`;
  const pin = openCryptokiPin();
  const so = OPENCRYPTOKI_FACTORY_SO_PIN;
  const pkcsconf = (args: string[], input?: string): void => {
    const result = spawnSync('pkcsconf', args, { input, encoding: 'utf8', timeout: 30_000 });
    if (result.status !== 0)
      throw new Error(
        `openCryptoki: pkcsconf ${args[0]} failed: ${(result.stdout + result.stderr).replace(/\d{8}/g, '***').trim()}`,
      );
  };
  pkcsconf(['-I', '-c', slot, '-S', so], `${label}\n`);
  pkcsconf(['-u', '-c', slot, '-S', so, '-n', pin]);
  process.env.SIGNET_TEST_OCK_LABEL = label;
  process.env.SIGNET_TEST_OCK_PIN = pin;
}

/**
 * openCryptoki has one soft token, not a free slot per token, and C_InitToken fails with
 * CKR_SESSION_EXISTS while the process holds any session: every test file of the run shares the
 * token the global setup initialised (`prefix` is not used). Tests find their keys by id, never by
 * counting what the token holds.
 */
export function createOpenCryptokiToken(): TestToken {
  const tokenLabel = process.env.SIGNET_TEST_OCK_LABEL;
  const pin = process.env.SIGNET_TEST_OCK_PIN;
  if (!tokenLabel || !pin)
    throw new Error(
      'openCryptoki: no run token (the global setup starts pkcsslotd and initialises it when SIGNET_TEST_HSM=opencryptoki)',
    );
  return {
    modulePath: openCryptokiModulePath(),
    tokenLabel,
    pin,
    soPin: OPENCRYPTOKI_FACTORY_SO_PIN,
    softhsmConf: '',
    tokenDir: SWTOK_DIR,
  };
}
