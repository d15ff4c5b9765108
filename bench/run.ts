/**
 * `npm run bench`: runs every bench/*.bench.ts in turn (each in its own Node process, with
 * UV_THREADPOOL_SIZE set before start) and assembles docs/benchmarks.md from the Markdown
 * sections they write to .bench-out/. Pass names to run a subset: `npm run bench -- hsm ca`.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

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
  const pg = spawnSync('sh', ['-c', 'softhsm2-util --version; openssl version'], { encoding: 'utf8' }).stdout.trim().split('\n');
  return [
    `- CPU: ${cpu}, ${os.cpus().length} cores; memory ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; ${os.type()} ${os.release()}`,
    `- Node ${process.version}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 'unset'}; SoftHSM2 ${pg[0] ?? '?'}; ${pg[1] ?? ''}`,
  ].join('\n');
}

const runStarted = Date.now();
for (const name of benches) {
  console.log(`\n### bench: ${name}`);
  const started = Date.now();
  const result = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', path.join(__dirname, `${name}.bench.ts`)], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? '16' },
  });
  console.log(`### bench ${name}: exit ${result.status} after ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (result.status !== 0) process.exitCode = 1;
}

/** The Markdown sections (`## …`) of .bench-out/, each file one or more; only files written since `since`. */
function benchSections(since: number): string[] {
  return fs
    .readdirSync(outDir)
    .filter((f) => f.endsWith('.md') && fs.statSync(path.join(outDir, f)).mtimeMs >= since)
    .sort()
    .map((f) => fs.readFileSync(path.join(outDir, f), 'utf8').trim());
}

/** Splits a page into its preamble and its `## ` sections, keyed by heading line. */
function splitSections(page: string): { preamble: string; sections: Map<string, string> } {
  const [preamble, ...rest] = page.split(/^(?=## )/m);
  return { preamble: preamble.trimEnd(), sections: new Map(rest.map((section) => [section.split('\n', 1)[0], section.trim()])) };
}

const docPath = path.join(root, 'docs', 'benchmarks.md');
if (only.length > 0 && fs.existsSync(docPath)) {
  // A subset run replaces only the sections it wrote (same heading) and appends new ones; the rest
  // of the page, and the machine line of the last full run, stay as they were.
  const page = splitSections(fs.readFileSync(docPath, 'utf8'));
  const fresh = benchSections(runStarted);
  for (const section of fresh) page.sections.set(section.split('\n', 1)[0], section);
  fs.writeFileSync(docPath, `${page.preamble}\n\n${[...page.sections.values()].join('\n\n')}\n`);
  console.log(`\nupdated docs/benchmarks.md (${fresh.length} of ${page.sections.size} sections)`);
} else {
  const sections = benchSections(0);
  const doc = `# Benchmarks

Produced by \`npm run bench\` (bench/run.ts), which runs each \`bench/*.bench.ts\` and collects the
sections below. Every comparison (raw PKCS#11, raw OpenSSL / Node crypto) was measured in the same
run on the same machine. Tests never assert these figures; this page records them. The soak
(\`npm run soak\`, 30 minutes by default) adds its own section when it has been run before this page
was assembled. \`npm run bench -- <name>\` runs one bench and replaces only its sections here.

Machine of the last full run (${new Date().toISOString().slice(0, 10)}):
${machine()}

${sections.join('\n\n')}
`;
  fs.writeFileSync(docPath, doc);
  console.log(`\nwrote docs/benchmarks.md (${sections.length} sections)`);
}
