import { CommandContext, describeKey, generateSignature, getPluginMetadata } from './commands';
import { COMMANDS, PluginError, validationError } from './protocol';

export interface PluginRun {
  exitCode: 0 | 1;
  /** Written to stdout on success (JSON, or text for `version`). */
  stdout?: string;
  /** Written to stderr on failure: `{"errorCode","errorMessage","errorMetadata"?}`. */
  stderr?: string;
}

/**
 * One plugin invocation as Notation makes it: `notation-signet <command>` with one JSON request on
 * stdin; exit 0 and the JSON response on stdout, or exit 1 and a JSON error on stderr.
 * Never throws; never prints the token (every output passes through `redact`).
 */
export async function runPlugin(args: string[], stdin: string, env: NodeJS.ProcessEnv): Promise<PluginRun> {
  const context: CommandContext = { env, secrets: [] };
  try {
    const command = args[0];
    if (args.length !== 1 || !(COMMANDS as readonly string[]).includes(command)) {
      throw validationError(
        `invalid command ${JSON.stringify(args.join(' '))}; usage: notation-signet <${COMMANDS.join('|')}>`,
      );
    }
    if (command === 'version') {
      const metadata = getPluginMetadata();
      return { exitCode: 0, stdout: `${metadata.name} - ${metadata.description}\nVersion: ${metadata.version}\n` };
    }
    // get-plugin-metadata is static: its request (if any) only has to be well-formed JSON.
    const request = parseRequest(stdin, command === 'get-plugin-metadata');
    const response =
      command === 'get-plugin-metadata'
        ? getPluginMetadata()
        : command === 'describe-key'
          ? await describeKey(request, context)
          : await generateSignature(request, context);
    return { exitCode: 0, stdout: redact(`${JSON.stringify(response)}\n`, context.secrets) };
  } catch (error) {
    const pluginError =
      error instanceof PluginError
        ? error
        : new PluginError('ERROR', `unexpected failure: ${error instanceof Error ? error.message : String(error)}`);
    return { exitCode: 1, stderr: redact(`${JSON.stringify(pluginError.toResponse())}\n`, context.secrets) };
  }
}

function parseRequest(stdin: string, emptyAllowed: boolean): Record<string, unknown> {
  if (stdin.trim() === '' && emptyAllowed) return {};
  let request: unknown;
  try {
    request = JSON.parse(stdin);
  } catch {
    throw validationError('Input is not a valid JSON');
  }
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    throw validationError('Input is not a JSON object');
  }
  return request as Record<string, unknown>;
}

/** Last line of defence: whatever path a secret took into a message, it does not leave the process. */
export function redact(text: string, secrets: string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length > 0) out = out.split(secret).join('[redacted]');
  }
  return out;
}
