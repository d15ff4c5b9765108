import * as fs from 'node:fs';
import * as path from 'node:path';
import { BackupService, readManifest } from '../../backup/backup.service';
import { CliCommand, CliError } from '../cli-command';

/** `signet backup --out DIR`: database (one consistent snapshot) + SoftHSM2 token directory. */
export const backupCommand: CliCommand = {
  name: 'backup',
  summary: 'write a backup (database snapshot and, on SoftHSM2, the token) to a new directory',
  usage: 'signet backup --out <dir>',
  options: { out: { type: 'string' } },
  async run({ app, config, out }, { values }) {
    if (typeof values.out !== 'string') throw new CliError(`--out is required (usage: ${backupCommand.usage})`, 2);
    const softhsmDir = config.hsm.modulePath ? undefined : path.join(config.dataDir, 'softhsm');
    const manifest = await app.get(BackupService).backup(path.resolve(values.out), { softhsmDir });
    out(
      `backup written to ${path.resolve(values.out)}: ${manifest.tables.reduce((n, t) => n + t.rows, 0)} rows, HSM ${manifest.hsm === 'softhsm' ? 'token included' : 'not included (back up your HSM with its vendor tools)'}`,
    );
  },
};

/**
 * `signet restore --from DIR` into a fresh data dir (or an empty database): the SoftHSM2 token is
 * put in place before anything opens the HSM, the schema is migrated, then the rows are loaded.
 */
export const restoreCommand: CliCommand = {
  name: 'restore',
  summary: 'restore a backup into a fresh data dir / empty database',
  usage: 'signet restore --from <dir>',
  options: { from: { type: 'string' } },
  async prepare(config, { values }) {
    if (typeof values.from !== 'string') throw new CliError(`--from is required (usage: ${restoreCommand.usage})`, 2);
    const manifest = readManifest(path.resolve(values.from));
    // Nothing may be bootstrapped on the target: the restored rows are the hierarchy.
    config.devBootstrap = false;
    if (manifest.hsm === 'softhsm') {
      if (config.hsm.modulePath)
        throw new CliError(
          'the backup holds a SoftHSM2 token but SIGNET_PKCS11_MODULE is set; restore it on embedded defaults',
        );
      const target = path.join(config.dataDir, 'softhsm');
      // A token is a directory (a lock file beside them is not one).
      if (
        fs.existsSync(path.join(target, 'tokens')) &&
        fs.readdirSync(path.join(target, 'tokens'), { withFileTypes: true }).some((entry) => entry.isDirectory())
      ) {
        throw new CliError(`${target} already holds a token; restore into a fresh SIGNET_DATA_DIR`);
      }
      fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
      fs.cpSync(path.join(path.resolve(values.from), 'softhsm'), target, { recursive: true });
    }
  },
  async run({ app, ownerDatabaseUrl, out }, { values }) {
    // As the owner role: loading audit rows wholesale is exactly what the service role may not do.
    const manifest = await app.get(BackupService).restore(path.resolve(String(values.from)), ownerDatabaseUrl);
    out(`restored ${manifest.tables.reduce((n, t) => n + t.rows, 0)} rows from a backup of ${manifest.createdAt}`);
  },
};
