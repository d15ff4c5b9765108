import * as os from 'node:os';
import type { AuditActor } from '../audit/audit.types';

/** Who ran a CLI command, for the audit log (the OS user and host; there is no API token). */
export function cliActor(): AuditActor {
  let user: string;
  try {
    user = os.userInfo().username;
  } catch {
    user = String(process.getuid?.() ?? 'unknown');
  }
  return { tokenName: 'cli', address: `cli:${user}@${os.hostname()}` };
}

/** "C=US,ST=WA,O=Example,CN=Name" → {C, ST, O, CN}; values may not contain ',' or '='. */
export function parseSubjectArgument(text: string): Record<string, string> {
  const subject: Record<string, string> = {};
  for (const part of text.split(',')) {
    const match = /^\s*([A-Za-z]+)\s*=\s*(.+?)\s*$/.exec(part);
    if (!match) throw new Error(`cannot read subject part "${part.trim()}" (expected C=..,ST=..,O=..,CN=..)`);
    subject[match[1]] = match[2];
  }
  return subject;
}
