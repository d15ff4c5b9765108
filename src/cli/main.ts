import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { parseArgs } from 'node:util';
import { AppModule } from '../app.module';
import { ConfigError, loadConfig } from '../config/config';
import { createLogger, PinoNestLogger, scrubText } from '../observability/logger';
import { Platform, startPlatform } from '../platform';
import { CliCommand, CliError } from './cli-command';
import { COMMANDS } from './commands';

/**
 * `signet <command>`: operator commands run in-process against the same database and HSM as the
 * server (attaching to a running server's embedded PostgreSQL). Exit 0 on success, non-zero with
 * one line on failure.
 */
function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'usage: signet <command> [options]',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
  ].join('\n');
}

function findCommand(argv: string[]): { command: CliCommand; rest: string[] } | undefined {
  // Longest match first: "token create" before "token".
  const sorted = [...COMMANDS].sort((a, b) => b.name.split(' ').length - a.name.split(' ').length);
  for (const command of sorted) {
    const words = command.name.split(' ');
    if (words.every((word, i) => argv[i] === word)) return { command, rest: argv.slice(words.length) };
  }
  return undefined;
}

export async function runCli(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === 'help') {
    process.stdout.write(usage() + '\n');
    return argv.length === 0 ? 2 : 0;
  }
  const found = findCommand(argv);
  if (!found) {
    process.stderr.write(`signet: unknown command "${argv.join(' ')}" (see signet --help)\n`);
    return 2;
  }
  const { command, rest } = found;
  let args;
  try {
    args = parseArgs({
      args: rest,
      options: { help: { type: 'boolean' }, ...(command.options ?? {}) },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    process.stderr.write(`signet ${command.name}: ${(error as Error).message} (usage: ${command.usage})\n`);
    return 2;
  }
  if (args.values.help) {
    process.stdout.write(`${command.summary}\nusage: ${command.usage}\n`);
    return 0;
  }

  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`signet: configuration error: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (command.standalone) {
    try {
      await command.standalone(config, args as never, (line) => process.stdout.write(line + '\n'));
      return typeof process.exitCode === 'number' ? process.exitCode : 0;
    } catch (error) {
      process.stderr.write(
        `signet ${command.name}: ${scrubText(error instanceof Error ? error.message : String(error))}\n`,
      );
      return error instanceof CliError ? error.exitCode : 1;
    }
  }
  // Operator output goes to stdout; logs only at warn and above, to stderr.
  const logger = createLogger(process.env.SIGNET_LOG_LEVEL ?? 'warn', (await import('pino')).default.destination(2));
  let platform: Platform | undefined;
  try {
    await command.prepare?.(config, args as never);
    platform = await startPlatform(config, logger, { attach: true });
    const app = await NestFactory.createApplicationContext(
      AppModule.forRoot({ config, databaseUrl: platform.databaseUrl, hsm: platform.hsm, role: 'cli' }),
      {
        logger: new PinoNestLogger(logger),
        abortOnError: false,
      },
    );
    try {
      await command.run!(
        { app, config, ownerDatabaseUrl: platform.ownerDatabaseUrl, out: (line) => process.stdout.write(line + '\n') },
        args as never,
      );
    } finally {
      await app.close();
    }
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof ConfigError) {
      process.stderr.write(`signet: configuration error: ${scrubText(message)}\n`);
      return 2;
    }
    process.stderr.write(`signet ${command.name}: ${scrubText(message)}\n`);
    return error instanceof CliError ? error.exitCode : 1;
  } finally {
    await platform?.stop().catch(() => undefined);
    logger.flush();
  }
}

if (require.main === module) {
  void runCli(process.argv.slice(2)).then((code) => process.exit(code));
}
