import { RevocationService } from '../../revocation/revocation.service';
import { cliActor } from '../cli-actor';
import { CliCommand, CliError } from '../cli-command';

/** `signet revoke <serial> [--reason R] [--invalidity-date ISO]` */
export const revokeCommand: CliCommand = {
  name: 'revoke',
  summary: 'revoke a certificate (its key version stops signing at once; CRL and OCSP follow)',
  usage:
    'signet revoke <serial-hex> [--reason keyCompromise|caCompromise|affiliationChanged|superseded|cessationOfOperation|unspecified] [--invalidity-date ISO-8601]',
  options: { reason: { type: 'string' }, 'invalidity-date': { type: 'string' } },
  async run({ app, out }, { values, positionals }) {
    if (positionals.length !== 1) throw new CliError(`one serial is required (usage: ${revokeCommand.usage})`, 2);
    const result = await app.get(RevocationService).revoke(
      positionals[0],
      {
        reason: values.reason as string | undefined,
        invalidityDate: values['invalidity-date'] as string | undefined,
      },
      cliActor(),
    );
    out(
      result.changed
        ? `revoked ${result.serial} (${result.reason}) at ${result.revokedAt}`
        : `${result.serial} was already revoked (${result.reason}) at ${result.revokedAt}`,
    );
  },
};
