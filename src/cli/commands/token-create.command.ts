import * as os from 'node:os';
import { isRole, ROLES } from '../../common/roles';
import { TokenService } from '../../auth/token.service';
import { IdentityAdminService } from '../../identity/identity-admin.service';
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
    if (typeof name !== 'string' || name === '')
      throw new CliError(`--name is required (usage: ${tokenCreateCommand.usage})`, 2);
    if (!isRole(role)) throw new CliError(`--role must be one of ${ROLES.join(', ')}`, 2);
    let expiresInDays: number | undefined;
    if (values['expires-in-days'] !== undefined) {
      const raw = String(values['expires-in-days']);
      if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > 3650)
        throw new CliError('--expires-in-days must be a whole number from 1 to 3650', 2);
      expiresInDays = Number(raw);
    }
    const keys = (values.key as string[] | undefined) ?? [];
    const actor = { tokenName: 'cli', address: `cli:${safeUser()}@${os.hostname()}` };
    const created = await app.get(TokenService).create({ name, role, keys, expiresInDays }, actor);
    process.stderr.write(
      `created ${created.role} token "${created.name}" (id ${created.id}${created.expiresAt ? `, expires ${created.expiresAt}` : ''}); it is shown only now\n`,
    );
    if (role === 'signer') process.stderr.write(await workloadHint(app.get(IdentityAdminService), keys));
    out(created.token);
  },
};

/**
 * A long-lived signer token is what workload identity replaces for CI: say so, naming the rules
 * that already grant these keys to OIDC ID tokens when there are some.
 */
async function workloadHint(identity: IdentityAdminService, keys: string[]): Promise<string> {
  const doc = 'docs/workload-identity.md';
  let covering: string[] = [];
  try {
    covering = (await identity.listRules())
      .filter((rule) => rule.state === 'active' && rule.keys.some((key) => keys.includes(key)))
      .map((rule) => rule.name);
  } catch {
    // The hint is advice; the token was created.
  }
  if (covering.length > 0) {
    return `hint: workload rule${covering.length > 1 ? 's' : ''} ${covering.map((name) => `"${name}"`).join(', ')} already let CI pipelines sign with ${keys.join(', ')} using short-lived OIDC ID tokens; a pipeline they match needs no long-lived token (${doc})\n`;
  }
  return `hint: CI pipelines with an OIDC issuer (GitHub Actions, GitLab, Kubernetes) can sign without a long-lived token: add a workload rule (POST /v1/workload-rules) instead (${doc})\n`;
}

function safeUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}
