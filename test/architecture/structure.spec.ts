import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The structural rules of docs/architecture.md that dependency-cruiser cannot see: data access
 * lives in repositories (and the database adapter), and no source file grows past 500 lines.
 */
const SRC = path.join(__dirname, '..', '..', 'src');

function sourceFiles(dir = SRC): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return /\.tsx?$/.test(entry.name) && !/\.(spec|d)\.tsx?$/.test(entry.name) ? [full] : [];
  });
}

/** Lines as `wc -l` counts them, plus an unterminated last one. */
const lineCount = (text: string) => text.split('\n').length - (text.endsWith('\n') ? 1 : 0);

const relative = (file: string) => path.relative(SRC, file).split(path.sep).join('/');

/** Where SQL and TypeORM data access may be written: repositories and the database adapter, never a service. */
export function mayAccessData(file: string): boolean {
  return /\.repository\.ts$/.test(file) || (file.startsWith('database/') && !file.endsWith('.service.ts'));
}

/** Calls that run SQL or TypeORM data access, with the code's comments and strings' prose left out. */
const DATA_ACCESS =
  /\.(query|getRepository|createQueryBuilder)\(|\bmanager\.(find\w*|save|insert|update|delete|upsert|count\w*|exists\w*|increment|decrement|softDelete|restore)\(/;

export function dataAccessLines(text: string): Array<{ line: number; code: string }> {
  return text
    .split('\n')
    .map((code, index) => ({ line: index + 1, code }))
    .filter(({ code }) => !/^\s*(\/\/|\*|\/\*)/.test(code) && DATA_ACCESS.test(code));
}

describe('architecture rules checked on the source tree', () => {
  it('finds data access only in *.repository.ts files and the database adapter (src/database, not its services)', () => {
    const offenders = sourceFiles()
      .map((file) => ({ file: relative(file), lines: dataAccessLines(fs.readFileSync(file, 'utf8')) }))
      .filter(({ file, lines }) => !mayAccessData(file) && lines.length > 0)
      .map(
        ({ file, lines }) => `${file}:${lines[0].line} (${lines.length} in all): ${lines[0].code.trim().slice(0, 120)}`,
      );
    expect(offenders).toEqual([]);
  });

  it('keeps every source file under 500 lines', () => {
    const long = sourceFiles()
      .map((file) => ({ file: relative(file), lines: lineCount(fs.readFileSync(file, 'utf8')) }))
      .filter(({ lines }) => lines >= 500)
      .map(({ file, lines }) => `${file}: ${lines} lines`);
    expect(long).toEqual([]);
  });

  it('names the whole key store (KEY_STORE, Pkcs11KeyStore) only in the HSM adapter and the CLI; other callers take the part they use', () => {
    // KeyManager, SignerFactory, Sealer or HsmReconciler (src/hsm/*.ts, provided by HsmModule).
    const WHOLE_STORE = /\b(KEY_STORE|Pkcs11KeyStore)\b/;
    const wholeStore = sourceFiles()
      .map(relative)
      .filter((file) => !/^(hsm|cli)\//.test(file))
      .filter((file) => WHOLE_STORE.test(fs.readFileSync(path.join(SRC, file), 'utf8')));
    expect(wholeStore).toEqual([]);
    // The names this looks for are still the ones HsmModule provides (a rename would empty the check).
    const hsmModule = fs.readFileSync(path.join(SRC, 'hsm', 'hsm.module.ts'), 'utf8');
    expect(hsmModule).toMatch(/provide: KEY_STORE\b/);
    expect(hsmModule).toMatch(/provide: Pkcs11KeyStore\b/);
  });

  it('recognises the data access it forbids and lets comments through (so the rule cannot pass vacuously)', () => {
    expect(dataAccessLines("  const rows = await this.dataSource.query('SELECT 1');")).toHaveLength(1);
    expect(dataAccessLines('  const keys = await manager.getRepository(KeyEntity).find();')).toHaveLength(1);
    expect(dataAccessLines('  await manager.save(entity);')).toHaveLength(1);
    expect(dataAccessLines('  // a comment that mentions .query( is not code')).toHaveLength(0);
    expect(mayAccessData('keys/keys.repository.ts')).toBe(true);
    expect(mayAccessData('keys/keys.service.ts')).toBe(false);
    expect(mayAccessData('database/change-notifier.ts')).toBe(true);
    expect(mayAccessData('database/bootstrap.service.ts')).toBe(false);
    expect(sourceFiles().length).toBeGreaterThan(100);
  });
});
