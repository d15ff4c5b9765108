import { AuditVerifier } from '../../audit/audit-verifier';
import { CliCommand, CliError } from '../cli-command';

/** `signet audit verify`: recomputes the audit chain; exit 1 naming the first bad seq. */
export const auditVerifyCommand: CliCommand = {
  name: 'audit verify',
  summary: 'verify the audit hash chain against its signed checkpoints',
  usage: 'signet audit verify [--full] [--json]',
  options: {
    full: { type: 'boolean' },
    json: { type: 'boolean' },
  },
  async run({ app, out }, { values }) {
    const { headHash: _internal, ...result } = await app
      .get(AuditVerifier)
      .verify(values.full ? 'full' : 'incremental');
    if (values.json) out(JSON.stringify(result));
    else {
      const checkpoint = result.lastCheckpoint
        ? `last checkpoint seq ${result.lastCheckpoint.seq} at ${result.lastCheckpoint.time}`
        : 'no checkpoint yet';
      for (const warning of result.warnings ?? []) process.stderr.write(`warning: ${warning}\n`);
      if (result.ok)
        out(
          `audit log OK: ${result.checked} row(s) checked after seq ${result.from} up to seq ${result.head} (${result.mode}); ${checkpoint}`,
        );
    }
    if (!result.ok) throw new CliError(`audit log BROKEN at seq ${result.firstBrokenSeq}: ${result.reason}`);
  },
};
