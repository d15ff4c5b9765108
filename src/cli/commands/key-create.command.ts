import { isKeySpec } from '../../pki/key-spec';
import { KeysService } from '../../keys/keys.service';
import { cliActor, parseSubjectArgument } from '../cli-actor';
import { CliCommand, CliError } from '../cli-command';

/** `signet key create --name N --key-spec EC-256 --subject "C=..,ST=..,O=..,CN=.." [--issuer CA] [--requires K …]` */
export const keyCreateCommand: CliCommand = {
  name: 'key create',
  summary: 'create a signing key (HSM key pair + code-signing certificate)',
  usage:
    'signet key create --name <name> --key-spec <EC-256|EC-384|EC-521|RSA-2048|RSA-3072|RSA-4096> --subject "C=..,ST=..,O=..,CN=.." [--issuer <ca>] [--requires <key> …] [--external]',
  options: {
    name: { type: 'string' },
    'key-spec': { type: 'string' },
    subject: { type: 'string' },
    issuer: { type: 'string' },
    requires: { type: 'string', multiple: true },
    external: { type: 'boolean' },
  },
  async run({ app, out }, { values }) {
    if (typeof values.name !== 'string') throw new CliError(`--name is required (usage: ${keyCreateCommand.usage})`, 2);
    const keySpec = values['key-spec'];
    if (!isKeySpec(keySpec))
      throw new CliError('--key-spec must be one of EC-256, EC-384, EC-521, RSA-2048, RSA-3072, RSA-4096', 2);
    if (typeof values.subject !== 'string')
      throw new CliError('--subject is required, e.g. "C=US,ST=WA,O=Example,CN=release"', 2);
    let subject: Record<string, string>;
    try {
      subject = parseSubjectArgument(values.subject);
    } catch (error) {
      throw new CliError((error as Error).message, 2);
    }
    const key = await app.get(KeysService).create(
      {
        name: values.name,
        keySpec,
        subject,
        issuer: values.issuer as string | undefined,
        requires: values.requires as string[] | undefined,
        external: values.external === true,
      },
      cliActor(),
    );
    const version = key.versions[0];
    out(
      `created key ${key.name} (${key.keySpec}, ${key.signingAlgorithm}); version ${version.version} ${version.state}${version.serial ? `, certificate ${version.serial}` : ''}`,
    );
  },
};
