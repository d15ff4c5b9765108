import * as fs from 'node:fs';
import { CaService } from '../../ca/ca.service';
import { CaCreationService } from '../../ca/ca-creation.service';
import { isKeySpec } from '../../pki/key-spec';
import { cliActor, parseSubjectArgument } from '../cli-actor';
import { CliCommand, CliError } from '../cli-command';

/**
 * `signet init`: creates the CA hierarchy (root + issuing CA, keys in the HSM). With
 * --offline-root only the issuing CA's key and a CSR are made (printed, or written to --csr-out);
 * `signet init --import-chain FILE` then accepts the chain the offline root signed.
 */
export const initCommand: CliCommand = {
  name: 'init',
  summary: 'create the CA hierarchy (or, with --offline-root, an issuing CA key and CSR; then --import-chain)',
  usage:
    'signet init --subject "C=..,ST=..,O=.." [--root NAME] [--issuing NAME] [--key-spec EC-384]\n' +
    '       signet init --offline-root --subject "C=..,ST=..,O=.." [--issuing NAME] [--csr-out FILE]\n' +
    '       signet init --import-chain FILE [--issuing NAME]',
  options: {
    subject: { type: 'string' },
    root: { type: 'string' },
    issuing: { type: 'string' },
    'key-spec': { type: 'string' },
    'offline-root': { type: 'boolean' },
    'csr-out': { type: 'string' },
    'import-chain': { type: 'string' },
  },
  async run({ app, out }, { values }) {
    const cas = app.get(CaService);
    const creation = app.get(CaCreationService);
    const actor = cliActor();
    const issuingName = String(values.issuing ?? 'issuing');
    const keySpec = values['key-spec'] === undefined ? 'EC-384' : String(values['key-spec']);
    if (!isKeySpec(keySpec))
      throw new CliError(`--key-spec must be one of EC-256, EC-384, EC-521, RSA-2048, RSA-3072, RSA-4096`, 2);

    if (values['import-chain'] !== undefined) {
      const file = String(values['import-chain']);
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (error) {
        throw new CliError(`cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      const chain = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
      const ca = await creation.importChain(
        issuingName,
        chain.map((pem) => `${pem}\n`),
        actor,
      );
      out(`imported the chain for ${ca.name}; generation ${ca.generations.at(-1)?.name} is active (root ${ca.parent})`);
      return;
    }

    if (typeof values.subject !== 'string')
      throw new CliError(`--subject is required (usage: ${initCommand.usage.split('\n')[0]})`, 2);
    let base: Record<string, string>;
    try {
      base = parseSubjectArgument(values.subject);
    } catch (error) {
      throw new CliError((error as Error).message, 2);
    }

    if (values['offline-root']) {
      const { ca, csr } = await creation.createExternalIssuing(
        { name: issuingName, keySpec, subject: { CN: `${base.O ?? 'Signet'} Issuing CA`, ...base } },
        actor,
      );
      if (values['csr-out'] !== undefined) {
        fs.writeFileSync(String(values['csr-out']), csr);
        out(
          `created issuing CA ${ca.name} (key in the HSM); CSR written to ${values['csr-out']}: have the offline root sign it, then run signet init --import-chain <chain.pem> --issuing ${ca.name}`,
        );
      } else {
        out(csr.trimEnd());
      }
      return;
    }

    const rootName = String(values.root ?? 'root');
    const existing = await cas.list();
    if (!existing.some((ca) => ca.name === rootName)) {
      await creation.create(
        { name: rootName, kind: 'root', keySpec, subject: { CN: `${base.O ?? 'Signet'} Root CA`, ...base } },
        actor,
      );
      out(`created root CA ${rootName}`);
    } else {
      out(`root CA ${rootName} exists`);
    }
    if (!existing.some((ca) => ca.name === issuingName)) {
      await creation.create(
        {
          name: issuingName,
          kind: 'issuing',
          parent: rootName,
          keySpec,
          subject: { CN: `${base.O ?? 'Signet'} Issuing CA`, ...base },
        },
        actor,
      );
      out(`created issuing CA ${issuingName} under ${rootName}`);
    } else {
      out(`issuing CA ${issuingName} exists`);
    }
  },
};
