import { CliCommand } from '../cli-command';
import { statusCommand } from './status.command';

/** Every `signet` command. Feature modules add theirs here. */
export const COMMANDS: CliCommand[] = [statusCommand];
