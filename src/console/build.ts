import * as fs from 'node:fs';
import * as path from 'node:path';
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib';

/**
 * Builds the security console (src/console/web) into dist/console/: one JavaScript and one CSS
 * bundle with content hashes in their names (served with long caching), index.html naming them,
 * and .gz/.br files beside each so the server can send them precompressed.
 *
 * Usage (after tsc, as `npm run build` does): node dist/src/console/build.js [outDir]
 *
 * esbuild is a devDependency: the image builds the console in its build stage and keeps only dist/.
 */
export async function buildConsole(sourceDir: string, outDir: string): Promise<{ files: string[] }> {
  // Loaded here, not at the top: the server never imports this module, and production installs lack esbuild.
  const esbuild = await import('esbuild');
  const staging = `${outDir}.tmp-${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  const result = await esbuild.build({
    entryPoints: [path.join(sourceDir, 'main.tsx')],
    bundle: true,
    format: 'esm',
    target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: path.join(sourceDir, 'tsconfig.json'),
    outdir: path.join(staging, 'assets'),
    entryNames: '[name]-[hash]',
    metafile: true,
    logLevel: 'warning',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const outputs = Object.keys(result.metafile.outputs).map((file) => path.resolve(file));
  const js = outputs.find((f) => f.endsWith('.js'));
  const css = outputs.find((f) => f.endsWith('.css'));
  if (!js || !css) throw new Error(`buildConsole: expected one .js and one .css bundle, got ${outputs.join(', ')}`);
  const url = (file: string) => `/console/assets/${path.basename(file)}`;
  const html = fs
    .readFileSync(path.join(sourceDir, 'index.html'), 'utf8')
    .replace('%CSS%', url(css))
    .replace('%JS%', url(js));
  fs.writeFileSync(path.join(staging, 'index.html'), html);
  const files = [path.join(staging, 'index.html'), js, css];
  for (const file of files) {
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(`${file}.gz`, gzipSync(bytes, { level: 9 }));
    fs.writeFileSync(
      `${file}.br`,
      brotliCompressSync(bytes, {
        params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: bytes.length },
      }),
    );
  }
  // Swap in whole, so a running server never serves an index.html naming bundles not yet written.
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.renameSync(staging, outDir);
  return { files: files.map((f) => path.join(outDir, path.relative(staging, f))) };
}

if (require.main === module) {
  const root = path.resolve(__dirname, '..', '..', '..');
  const outDir = path.resolve(process.argv[2] ?? path.join(root, 'dist', 'console'));
  buildConsole(path.join(root, 'src', 'console', 'web'), outDir).then(
    ({ files }) => console.log(`console: ${files.map((f) => path.relative(root, f)).join(', ')}`),
    (error: Error) => {
      console.error(`console build failed: ${error.message}`);
      process.exit(1);
    },
  );
}
