import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The plugin's version is Signet's (package.json). Looked up from this file upwards: dist/src/notation-plugin
 * in a build, src/notation-plugin under ts-jest. The single-file build (standalone.ts) replaces this module
 * with the version it read at build time.
 */
export function pluginVersion(): string {
  let dir = __dirname;
  for (let depth = 0; depth < 5; depth++, dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === 'signet' && typeof pkg.version === 'string' && pkg.version !== '') return pkg.version;
    } catch {
      // not here; keep walking up
    }
  }
  throw new Error(`Signet's package.json was not found above ${__dirname}`);
}
