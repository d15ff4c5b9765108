import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isSoftHsmModule } from './hsm-options';

/** SoftHSM2's configuration file when SOFTHSM2_CONF is unset (Debian, Ubuntu, Fedora). */
const DEFAULT_SOFTHSM2_CONF = '/etc/softhsm/softhsm2.conf';

/** The lock file's name inside the token directory (SoftHSM2 only looks at its sub-directories). */
export const TOKEN_LOCK_FILE_NAME = '.signet-token.lock';

/**
 * The file every process using the same SoftHSM2 token directory locks around its token-level
 * calls (module-instance-lock.ts), or undefined: another module (it keeps its own state), or
 * SoftHSM2's database backend (SQLite orders its readers and writers itself).
 */
export function softHsmTokenLockFile(modulePath: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  // SoftHSM2 is the one module whose token state is files that other processes may share.
  if (!isSoftHsmModule(modulePath)) return undefined;
  let text: string;
  try {
    text = readFileSync(env.SOFTHSM2_CONF ?? DEFAULT_SOFTHSM2_CONF, 'utf8');
  } catch {
    return undefined; // SoftHSM2 itself will say what is wrong with its configuration
  }
  const settings = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^\s*([A-Za-z0-9_.]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (match && !line.trimStart().startsWith('#')) settings.set(match[1], match[2]);
  }
  const tokenDir = settings.get('directories.tokendir');
  if (!tokenDir || (settings.get('objectstore.backend') ?? 'file') !== 'file') return undefined;
  try {
    if (!statSync(tokenDir).isDirectory()) return undefined;
  } catch {
    return undefined;
  }
  return join(tokenDir, TOKEN_LOCK_FILE_NAME);
}
