import type { INestApplicationContext } from '@nestjs/common';
import type { ParseArgsConfig } from 'node:util';
import type { SignetConfig } from '../config/config';

export interface CliContext {
  app: INestApplicationContext;
  config: SignetConfig;
  /** The owner role's URL (migrations, restore); `app` itself runs as the service role. */
  ownerDatabaseUrl: string;
  /** Writes one line to stdout. */
  out(line: string): void;
}

export interface CliArgs {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

/**
 * One `signet <name>` command. A command either needs the application (database + HSM, via
 * `run`) or runs before/without it (`runStandalone`, e.g. `init --offline-root` importing files).
 */
export interface CliCommand {
  /** Words after `signet`, e.g. "token create". */
  name: string;
  summary: string;
  usage: string;
  options?: ParseArgsConfig['options'];
  /**
   * Runs before the database and HSM are opened (e.g. `restore` puts the token in place first);
   * may adjust the configuration for this run.
   */
  prepare?(config: SignetConfig, args: CliArgs): Promise<void>;
  /** Commands that need neither database nor application (e.g. `hsm init-token`) run here instead. */
  standalone?(config: SignetConfig, args: CliArgs, out: (line: string) => void): Promise<void>;
  run?(context: CliContext, args: CliArgs): Promise<void>;
}

/** A failure the CLI reports as one line and exit code 1 (no stack trace). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
