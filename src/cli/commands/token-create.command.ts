import * as os from 'node:os';
import { isRole, ROLES } from '../../auth/roles';
import { TokenService } from '../../auth/token.service';
import { CliCommand, CliError } from '../cli-command';

/** `signet token create`: prints the new token once, on stdout, alone (for `TOKEN=$(…)`). */
export const tokenCreateCommand: CliCommand = {
  name: 'token create',
  summary: 'create an API token and print it once',
  usage: `signet token create --name <name> --role <${ROLES.join('|')}> [--key <key> …] [--expires-in-days <days>]`,
  options: {
    name: { type: 'string' },
    role: { type: 'string' },
    key: { type: 'string', multiple: true },
    'expires-in-days': { type: 'string' },
  },
  async run({ app, out }, { values }) {
    const name = values.name;
    const role = values.role;
    if (typeof name !== 'string' || name === '') throw new CliError(`--name is required (usage: ${tokenCreateCommand.usage})`, 2);
    if (!isRole(role)) throw new CliError(`--role must be one of ${ROLES.join(', ')}`, 2);
    let expiresInDays: number | undefined;
    if (values['expires-in-days'] !== undefined) {
      const raw = String(values['expires-in-days']);
      if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > 3650) throw new CliError('--expires-in-days must be a whole number from 1 to 3650', 2);
      expiresInDays = Number(raw);
    }
    const keys = (values.key as string[] | undefined) ?? [];
    const actor = { tokenName: 'cli', address: `cli:${safeUser()}@${os.hostname()}` };
    const created = await app.get(TokenService).create({ name, role, keys, expiresInDays }, actor);
    process.stderr.write(`created ${created.role} token "${created.name}" (id ${created.id}${created.expiresAt ? `, expires ${created.expiresAt}` : ''}); it is shown only now\n`);
    out(created.token);
  },
};

function safeUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}
