import { HealthService } from '../../observability/health.service';
import { CliCommand } from '../cli-command';

/** `signet status`: one line per readiness check (others add lines: expiry, rotation, distribution). */
export const statusCommand: CliCommand = {
  name: 'status',
  summary: 'show readiness of the database and HSM, and the state of keys, CAs and distribution',
  usage: 'signet status',
  async run({ app, out }) {
    const { ready, checks } = await app.get(HealthService).readiness();
    for (const [name, result] of Object.entries(checks)) {
      const { ok, ...details } = result;
      out(`${name}: ${ok ? 'ok' : 'UNAVAILABLE'}${Object.keys(details).length ? ' ' + JSON.stringify(details) : ''}`);
    }
    for (const line of await statusLines(app)) out(line);
    if (!ready) process.exitCode = 1;
  },
};

/** Contributors of `signet status` lines, registered by feature modules. */
export type StatusLineProvider = (app: import('@nestjs/common').INestApplicationContext) => Promise<string[]>;
const providers: StatusLineProvider[] = [];

export function addStatusLines(provider: StatusLineProvider): void {
  providers.push(provider);
}

async function statusLines(app: import('@nestjs/common').INestApplicationContext): Promise<string[]> {
  const lines: string[] = [];
  for (const provider of providers) lines.push(...(await provider(app)));
  return lines;
}
