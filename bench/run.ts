/**
 * `npm run bench`: runs every bench/*.bench.ts in turn (each in its own Node process, with
 * UV_THREADPOOL_SIZE set before start) and assembles docs/benchmarks.md from the Markdown
 * sections they write to .bench-out/. Pass names to run a subset: `npm run bench -- hsm ca`; then
 * only the sections of the benches that ran (and passed) are replaced in docs/benchmarks.md.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { replaceSections } from './sections';

const root = path.resolve(__dirname, '..');
const outDir = path.join(root, '.bench-out');
fs.mkdirSync(outDir, { recursive: true });

const only = process.argv.slice(2);
const benches = fs
  .readdirSync(__dirname)
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.replace(/\.bench\.ts$/, ''))
  .filter((name) => only.length === 0 || only.includes(name))
  .sort();

function machine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const pg = spawnSync('sh', ['-c', 'softhsm2-util --version; openssl version'], { encoding: 'utf8' })
    .stdout.trim()
    .split('\n');
  return [
    `- CPU: ${cpu}, ${os.cpus().length} cores; memory ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; ${os.type()} ${os.release()}`,
    `- Node ${process.version}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 'unset'}; SoftHSM2 ${pg[0] ?? '?'}; ${pg[1] ?? ''}`,
  ].join('\n');
}

const passed: string[] = [];
for (const name of benches) {
  console.log(`\n### bench: ${name}`);
  const started = Date.now();
  const result = spawnSync(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', path.join(__dirname, `${name}.bench.ts`)],
    {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? '16' },
    },
  );
  console.log(`### bench ${name}: exit ${result.status} after ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (result.status !== 0) process.exitCode = 1;
  else passed.push(name);
}

const docPath = path.join(root, 'docs', 'benchmarks.md');
if (only.length > 0 && fs.existsSync(docPath)) {
  // A subset run: the other sections (and the machine line of the last full run) stay as they are.
  const ran = passed
    .map((name) => ({ name, file: path.join(outDir, `${name}.md`) }))
    .filter(({ file }) => fs.existsSync(file))
    .map(({ name, file }) => ({ name, markdown: fs.readFileSync(file, 'utf8') }));
  fs.writeFileSync(docPath, replaceSections(fs.readFileSync(docPath, 'utf8'), ran));
  console.log(
    `\nreplaced ${ran.length} section(s) of docs/benchmarks.md: ${ran.map((r) => r.name).join(', ') || 'none'}`,
  );
  process.exit();
}

const sections = fs
  .readdirSync(outDir)
  .filter((f) => f.endsWith('.md'))
  .sort()
  .map((f) => fs.readFileSync(path.join(outDir, f), 'utf8').trim());

const doc = `# Benchmarks

Produced by \`npm run bench\` (bench/run.ts), which runs each \`bench/*.bench.ts\` and collects the
sections below. Every comparison (raw PKCS#11, raw OpenSSL / Node crypto) was measured in the same
run on the same machine. Tests never assert these figures; this page records them. The soak
(\`npm run soak\`, 30 minutes by default) adds its own section when it has been run before this page
was assembled.

Machine of the last full run (${new Date().toISOString().slice(0, 10)}):
${machine()}

${sections.join('\n\n')}
`;
fs.writeFileSync(docPath, doc);
console.log(`\nwrote docs/benchmarks.md (${sections.length} sections)`);
