#!/usr/bin/env node
// `npm start`: runs Signet on embedded defaults (or whatever SIGNET_*/DATABASE_URL say).
// 1. Builds dist/ (incremental) unless --no-build.
// 2. Without SIGNET_PKCS11_MODULE, Signet uses SoftHSM2: install it when missing and we can
//    (Debian/Ubuntu, apt, as root), otherwise stop with the exact install command.
// 3. UV_THREADPOOL_SIZE is fixed when Node first uses its thread pool (HSM signing runs there),
//    so the server runs in a child Node started with it set. SIGTERM/SIGINT/SIGHUP reaching this
//    process (npm forwards them) are passed on; Signet drains and exits, and so do we.
// 4. The child's V8 old-space limit is SIGNET_MAX_HEAP_MB (default 512): a ceiling, so one replica's
//    memory is bounded whatever the machine has. (How far the heap grows between full GCs is set in
//    src/main.ts.)
// One Node process from npm's point of view, so no shell sits between npm and us swallowing signals.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

if (!process.argv.includes('--no-build')) {
  const build = spawnSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', '--silent', 'build'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (build.status !== 0) process.exit(build.status ?? 1);
}
const { findSoftHsmLibrary } = require(path.join(root, 'dist', 'src', 'hsm', 'softhsm-dev-token.js'));

function installCommand() {
  if (process.platform === 'darwin') return 'brew install softhsm';
  if (fs.existsSync('/etc/debian_version')) return 'sudo apt-get install -y softhsm2';
  if (fs.existsSync('/etc/fedora-release') || fs.existsSync('/etc/redhat-release'))
    return 'sudo dnf install -y softhsm';
  if (fs.existsSync('/etc/alpine-release')) return 'sudo apk add softhsm';
  return 'install SoftHSM2 (https://www.opendnssec.org/softhsm/) or set SIGNET_PKCS11_MODULE';
}

function ensureSoftHsm() {
  if (process.env.SIGNET_PKCS11_MODULE || findSoftHsmLibrary()) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0;
  if (isRoot && hasApt) {
    console.error('signet: SoftHSM2 is not installed; installing it with apt-get (softhsm2)');
    const update = spawnSync('apt-get', ['update'], { stdio: 'inherit' });
    const install =
      update.status === 0 &&
      spawnSync('apt-get', ['install', '-y', 'softhsm2'], {
        stdio: 'inherit',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    if (install && install.status === 0 && findSoftHsmLibrary()) return;
    console.error('signet: installing SoftHSM2 failed; run: apt-get install -y softhsm2');
    process.exit(1);
  }
  console.error(
    `signet: SoftHSM2 is required on embedded defaults and is not installed. Install it with: ${installCommand()}`,
  );
  console.error("        (or point SIGNET_PKCS11_MODULE and SIGNET_PKCS11_PIN_FILE at your HSM's PKCS#11 module)");
  process.exit(1);
}

/** --max-old-space-size for the server: SIGNET_MAX_HEAP_MB, a whole number of MB (64 or more). */
function heapLimitMb() {
  const value = process.env.SIGNET_MAX_HEAP_MB ?? '512';
  if (!/^[0-9]+$/.test(value) || Number(value) < 64) {
    console.error(
      `signet: configuration error: SIGNET_MAX_HEAP_MB: expected a whole number of MB, at least 64 (got "${value}")`,
    );
    process.exit(2);
  }
  return Number(value);
}

const heapMb = heapLimitMb();
ensureSoftHsm();
const child = spawn(process.execPath, [`--max-old-space-size=${heapMb}`, path.join(root, 'dist', 'src', 'main.js')], {
  stdio: 'inherit',
  env: { ...process.env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE || '16' },
});
// Forward stop signals; Signet drains and exits 0, and so do we. (A terminal's Ctrl-C reaches both
// processes; Signet treats a repeat within a moment as the same request.)
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(signal, () => child.kill(signal === 'SIGHUP' ? 'SIGTERM' : signal));
}
// npm exits on SIGTERM without waiting for its script: when our parent goes away, stop Signet
// the graceful way rather than leaving it running without anyone to stop it.
const parent = process.ppid;
const watchParent = setInterval(() => {
  if (process.ppid !== parent) {
    clearInterval(watchParent);
    child.kill('SIGTERM');
  }
}, 500);
watchParent.unref();
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
