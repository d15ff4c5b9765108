import { CliCommand } from '../cli-command';
import { auditVerifyCommand } from './audit-verify.command';
import { backupCommand, restoreCommand } from './backup.command';
import { hsmInitTokenCommand, hsmReconcileCommand } from './hsm.command';
import './distribution-status.lines';
import './hsm-status.lines';
import { initCommand } from './init.command';
import { keyCreateCommand } from './key-create.command';
import { migrateCommand } from './migrate.command';
import { revokeCommand } from './revoke.command';
import './rotation-status.lines';
import { statusCommand } from './status.command';
import { tokenCreateCommand } from './token-create.command';

/** Every `signet` command. Feature modules add theirs here. */
export const COMMANDS: CliCommand[] = [
  statusCommand,
  initCommand,
  tokenCreateCommand,
  keyCreateCommand,
  revokeCommand,
  auditVerifyCommand,
  backupCommand,
  restoreCommand,
  hsmInitTokenCommand,
  hsmReconcileCommand,
  migrateCommand,
];
