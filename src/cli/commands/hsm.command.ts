import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { KEY_STORE, KeyStore } from '../../hsm/key-store';
import { Pkcs11Library } from '../../hsm/pkcs11-library';
import { initializeToken, readPinFile } from '../../hsm/softhsm-dev-token';
import { reconcileReferenced, referencedKeyUris } from '../../rotation/hsm-objects';
import { CliCommand, CliError } from '../cli-command';

/**
 * `signet hsm init-token`: initialises the configured SoftHSM2 token (label SIGNET_PKCS11_TOKEN_LABEL,
 * user PIN from SIGNET_PKCS11_PIN_FILE, a random SO PIN written next to the token directory) when it
 * does not exist yet — the docker-compose `hsm-init` service. Idempotent. Vendor HSMs are
 * initialised with their own tools.
 */
export const hsmInitTokenCommand: CliCommand = {
  name: 'hsm init-token',
  summary: 'initialise the configured SoftHSM2 token if it does not exist (docker-compose hsm-init)',
  usage: 'SIGNET_PKCS11_MODULE=…/libsofthsm2.so SIGNET_PKCS11_PIN_FILE=… SOFTHSM2_CONF=… signet hsm init-token',
  async standalone(config, _args, out) {
    if (!config.hsm.modulePath || !config.hsm.pinFile)
      throw new CliError(
        'set SIGNET_PKCS11_MODULE and SIGNET_PKCS11_PIN_FILE (on embedded defaults the token is created by the server itself)',
        2,
      );
    const conf = process.env.SOFTHSM2_CONF;
    if (!conf)
      throw new CliError(
        'set SOFTHSM2_CONF to the SoftHSM2 configuration file to create (its token directory sits beside it)',
        2,
      );
    if (!fs.existsSync(conf)) {
      const tokenDir = path.join(path.dirname(conf), 'tokens');
      fs.mkdirSync(tokenDir, { recursive: true, mode: 0o700 });
      fs.writeFileSync(
        conf,
        `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`,
        { mode: 0o600 },
      );
    }
    const soPinFile = path.join(path.dirname(conf), 'so.pin');
    if (!fs.existsSync(soPinFile))
      fs.writeFileSync(soPinFile, `${randomBytes(18).toString('base64url')}\n`, { mode: 0o600 });
    const library = Pkcs11Library.acquire(config.hsm.modulePath);
    try {
      const created = initializeToken(
        library,
        config.hsm.tokenLabel,
        readPinFile(soPinFile),
        readPinFile(config.hsm.pinFile),
      );
      out(
        created
          ? `initialised token '${config.hsm.tokenLabel}' (SO PIN in ${soPinFile})`
          : `token '${config.hsm.tokenLabel}' already exists`,
      );
    } finally {
      library.release();
    }
  },
};

/**
 * `signet hsm reconcile`: token objects that no database row references (orphans, e.g. from a
 * crash between key generation and its commit) and rows whose key is missing from the HSM.
 * Exit code 1 when anything is found. It lists; it never deletes.
 */
export const hsmReconcileCommand: CliCommand = {
  name: 'hsm reconcile',
  summary: 'list HSM key pairs no row references and rows whose key is missing',
  usage: 'signet hsm reconcile',
  async run({ app, out }) {
    const referenced = await referencedKeyUris(app.get(DataSource));
    const report = await reconcileReferenced(app.get<KeyStore>(KEY_STORE), referenced);
    for (const orphan of report.orphanObjects) out(`orphan: ${orphan.uri} (${orphan.label}, ${orphan.role})`);
    for (const missing of report.missingObjects) out(`missing: ${missing}`);
    for (const planned of report.plannedObjects) out(`planned by a running rotation (not an orphan): ${planned}`);
    out(
      `${referenced.uris.length} keys referenced; ${report.orphanObjects.length} orphan(s), ${report.missingObjects.length} missing`,
    );
    if (report.orphanObjects.length + report.missingObjects.length > 0) process.exitCode = 1;
  },
};
