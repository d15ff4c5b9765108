import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, ServerProcess } from '../support/server-process';

/** A real `node dist/src/main.js` with the rotation test hooks on (NODE_ENV=test) and no scheduler timer. */
export async function startSignet(
  env: Record<string, string>,
  options: { waitReady?: boolean; port?: number; script?: string } = {},
): Promise<SignetProcess> {
  const server = new ServerProcess(
    options.port ?? (await freePort()),
    {
      NODE_ENV: 'test',
      SIGNET_TEST_HOOKS: 'true',
      SIGNET_ROTATION_TICK_SECONDS: '0',
      SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
      SIGNET_DEV_BOOTSTRAP: 'true',
      ...env,
    },
    options.script,
  );
  const process = new SignetProcess(server, env.SIGNET_DATA_DIR);
  if (options.waitReady !== false) await server.waitReady();
  return process;
}

export interface TickReport {
  now: string;
  started: Array<{ id: string; subject: string; trigger: string }>;
  rotations: number;
  steps: number;
}

export interface HsmReport {
  keys: Array<{ label: string; id: string; role: string; hasPrivateKey: boolean }>;
  reconciliation: { orphanObjects: Array<{ label: string }>; missingObjects: string[]; plannedObjects: string[] };
}

export class SignetProcess {
  constructor(
    readonly server: ServerProcess,
    private readonly dataDir: string,
  ) {}

  get adminToken(): string {
    return fs.readFileSync(path.join(this.dataDir, 'admin.token'), 'utf8').trim();
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are read loosely in tests
  async api(method: 'GET' | 'POST' | 'PATCH', url: string, body?: unknown): Promise<{ status: number; body: any }> {
    const response = await fetch(`${this.server.url}${url}`, {
      method,
      headers: {
        authorization: `Bearer ${this.adminToken}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  }

  /** The injected scheduler tick (test hook) at `now`. */
  async tick(now: Date): Promise<TickReport> {
    const response = await this.api('POST', '/v1/test-hooks/rotation/tick', { now: now.toISOString() });
    if (response.status !== 200) throw new Error(`tick answered ${response.status}: ${JSON.stringify(response.body)}`);
    return response.body;
  }

  async hsm(): Promise<HsmReport> {
    const response = await this.api('GET', '/v1/test-hooks/hsm');
    if (response.status !== 200) throw new Error(`hsm answered ${response.status}: ${JSON.stringify(response.body)}`);
    return response.body;
  }

  async stop(): Promise<void> {
    this.server.kill('SIGTERM');
    const { code } = await this.server.exited;
    if (code !== 0) throw new Error(`signet exited with ${code}:\n${this.server.text().slice(-3000)}`);
  }
}
