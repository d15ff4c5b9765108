import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * The layer rules of .dependency-cruiser.cjs (run on src/ by `npm run lint:deps` in .ci/run) shown
 * to catch what they forbid: each case cruises a small tree of its own, with the project's real
 * config, the real depcruise and the project's node_modules (linked in, so rules on packages
 * apply), and expects the named rule to fail it. A tree that breaks no rule
 * passes, so a config that rejected everything would fail here too.
 */
const ROOT = path.join(__dirname, '..', '..');
const DEPCRUISE = path.join(ROOT, 'node_modules', '.bin', 'depcruise');

function cruise(files: Record<string, string>): { code: number | null; output: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'signet-depcruise-'));
  try {
    fs.copyFileSync(path.join(ROOT, '.dependency-cruiser.cjs'), path.join(dir, '.dependency-cruiser.cjs'));
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
    fs.writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'commonjs', target: 'es2022', strict: true } }),
    );
    for (const [file, source] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      fs.writeFileSync(path.join(dir, file), source);
    }
    const result = spawnSync(DEPCRUISE, ['src', '--config', '.dependency-cruiser.cjs', '--output-type', 'err'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { code: result.status, output: `${result.stdout}${result.stderr}` };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A pure pki tree and a ca module using it through its index: no rule applies. */
const CLEAN = {
  'src/pki/index.ts': "export { buildCrl } from './crl-builder';\nexport type { KeySpec } from './key-spec';\n",
  'src/pki/crl-builder.ts': 'export const buildCrl = (): Buffer => Buffer.alloc(0);\n',
  'src/pki/key-spec.ts': "export type KeySpec = 'EC-256';\n",
  'src/ca/ca.service.ts':
    "import { buildCrl } from '../pki';\nimport type { KeySpec } from '../pki/key-spec';\nexport const spec: KeySpec = 'EC-256';\nexport const crl = buildCrl();\n",
};

describe('dependency rules (.dependency-cruiser.cjs) on deliberate violations', () => {
  it('passes a tree that breaks no rule', () => {
    const { code, output } = cruise(CLEAN);
    expect(output).toContain('no dependency violations found');
    expect(code).toBe(0);
  });

  it.each([
    [
      'pki-imports-nothing-of-signet',
      {
        'src/pki/crl-builder.ts':
          "import { KEY } from '../keys/keys.service';\nexport const buildCrl = (): string => KEY;\n",
        'src/keys/keys.service.ts': "export const KEY = 'k';\n",
      },
    ],
    [
      'domain-does-not-import-use-cases',
      {
        'src/keys/keys.service.ts': "import { sign } from '../signing/signing.service';\nexport const KEY = sign();\n",
        'src/signing/signing.service.ts': "export const sign = (): string => 's';\n",
      },
    ],
    [
      'no-folder-cycles',
      {
        'src/tsa/tsa.service.ts':
          "import { store } from '../truststore/truststore.service';\nexport const tsa = (): string => store;\n",
        'src/truststore/truststore.service.ts':
          "import { tsa } from '../tsa/tsa.service';\nexport const store = 'x';\nexport const both = tsa;\n",
      },
    ],
    [
      'pki-uses-no-nest-database-or-pkcs11',
      {
        'src/pki/crl-builder.ts':
          "import { Injectable } from '@nestjs/common';\n@Injectable()\nexport class Builder {}\nexport const buildCrl = (): Buffer => Buffer.alloc(0);\n",
      },
    ],
    [
      'pki-adapters-platform-do-not-import-domain-or-use-cases',
      {
        'src/hsm/key-manager.ts': "import { KEY } from '../keys/keys.service';\nexport const manager = KEY;\n",
        'src/keys/keys.service.ts': "export const KEY = 'k';\n",
      },
    ],
    [
      'platform-does-not-import-adapters',
      {
        'src/observability/health.ts':
          "import { manager } from '../hsm/key-manager';\nexport const health = manager;\n",
        'src/hsm/key-manager.ts': "export const manager = 'm';\n",
      },
    ],
    [
      'nothing-imports-the-interface-layer',
      {
        'src/keys/keys.service.ts': "import { route } from './keys.controller';\nexport const KEY = route;\n",
        'src/keys/keys.controller.ts': "export const route = '/v1/keys';\n",
      },
    ],
    [
      'ca-reaches-the-hsm-through-ca-keys',
      {
        'src/ca/ca.service.ts':
          "import { KEY_MANAGER } from '../hsm/key-manager';\nexport const token = KEY_MANAGER;\n",
        'src/hsm/key-manager.ts': "export const KEY_MANAGER = Symbol('KEY_MANAGER');\n",
      },
    ],
    [
      'pki-is-used-through-its-index',
      { 'src/ca/ca.service.ts': "import { buildCrl } from '../pki/crl-builder';\nexport const crl = buildCrl();\n" },
    ],
  ])('fails %s', (rule, files) => {
    const { code, output } = cruise({ ...CLEAN, ...files });
    expect(output).toContain(rule);
    expect(code).not.toBe(0);
  });
});
