/**
 * notation-signet: the Notation plugin process (bin/notation-signet, or the single-file build).
 * Runs on require: reads the request from stdin, answers on stdout/stderr, exits 0 or 1.
 * Node built-ins only, so it starts fast and ships as one file.
 */
import { runPlugin } from './cli';
import { PluginError } from './protocol';

/** A JWS signing input is a few KiB (Signet accepts ≤ 64 KiB); this bounds what a broken caller can make us hold. */
const MAX_REQUEST_BYTES = 8 * 1024 * 1024;

// Notation parses stderr as the JSON error: keep Node's own warnings (deprecations etc.) out of it.
process.removeAllListeners('warning');

function readStdin(): Promise<string> {
  // Run by hand in a terminal, get-plugin-metadata should not wait for input.
  if (process.stdin.isTTY) return Promise.resolve('');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    process.stdin.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        reject(new PluginError('VALIDATION_ERROR', `request on stdin is larger than ${MAX_REQUEST_BYTES} bytes`));
        process.stdin.destroy();
        return;
      }
      chunks.push(chunk);
    });
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

function finish(exitCode: number, stdout: string | undefined, stderr: string | undefined): void {
  const stream = stdout !== undefined ? process.stdout : process.stderr;
  const text = stdout ?? stderr ?? '';
  // Exit only once the answer is flushed: Notation reads it from a pipe.
  stream.write(text, () => process.exit(exitCode));
}

readStdin()
  .then((stdin) => runPlugin(process.argv.slice(2), stdin, process.env))
  .then(
    (run) => finish(run.exitCode, run.stdout, run.stderr),
    (error: unknown) => {
      const pluginError =
        error instanceof PluginError ? error : new PluginError('ERROR', `cannot read the request: ${String(error)}`);
      finish(1, undefined, `${JSON.stringify(pluginError.toResponse())}\n`);
    },
  );
