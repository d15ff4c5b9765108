import { CliCommand } from '../cli-command';
import { auditVerifyCommand } from './audit-verify.command';
import { statusCommand } from './status.command';
import { tokenCreateCommand } from './token-create.command';

/** Every `signet` command. Feature modules add theirs here. */
export const COMMANDS: CliCommand[] = [statusCommand, tokenCreateCommand, auditVerifyCommand];
