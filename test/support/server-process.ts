import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');

/** Builds dist/ once per test run (tsc is incremental), for tests that run the real server binary. */
export function ensureBuilt(): void {
  const marker = path.join(process.env.SIGNET_TEST_RUN_DIR ?? os.tmpdir(), '.built');
  if (fs.existsSync(marker)) return;
  execFileSync(
    process.execPath,
    [
      path.join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
      '-p',
      path.join(PROJECT_ROOT, 'tsconfig.build.json'),
    ],
    { stdio: 'inherit' },
  );
  fs.writeFileSync(marker, '');
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(process.env.SIGNET_TEST_RUN_DIR ?? os.tmpdir(), prefix));
}

/** A real `node dist/src/main.js` process (or another launcher script, such as scripts/start.js) with its output captured. */
export class ServerProcess {
  readonly output: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;

  constructor(
    readonly port: number,
    env: Record<string, string>,
    script = path.join(PROJECT_ROOT, 'dist', 'src', 'main.js'),
    args: string[] = [],
  ) {
    this.child = spawn(process.execPath, [script, ...args], {
      cwd: PROJECT_ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/root',
        UV_THREADPOOL_SIZE: '8',
        SIGNET_PORT: String(port),
        SIGNET_HOST: '127.0.0.1',
        SIGNET_LOG_REQUESTS: 'false',
        SIGNET_DRAIN_DELAY_MS: '0',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => this.output.push(chunk));
    }
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  text(): string {
    return this.output.join('');
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Waits (bounded, generously) until /readyz answers 200; fails early if the process exits. */
  async waitReady(timeoutMs = 90_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    while (Date.now() < deadline) {
      if (exited) throw new Error(`server exited before becoming ready:\n${this.text().slice(-3000)}`);
      try {
        const response = await fetch(`${this.url}/readyz`);
        if (response.status === 200) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`server not ready within ${timeoutMs} ms:\n${this.text().slice(-3000)}`);
  }
}

/** PIDs of running postgres servers whose command line names `dataDir`. */
export function postgresProcessesFor(dataDir: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmdline[0]?.endsWith('/postgres') && cmdline.some((arg) => arg.startsWith(dataDir))) pids.push(Number(entry));
    } catch {
      // process went away
    }
  }
  return pids;
}
