/**
 * Fault drills: runs the drill tests (test/drills/*.e2e-spec.ts) through jest, in band, with
 * SIGNET_DRILL_REPORT set, and renders what they measured — each drill under a steady sign load of
 * 8 clients: PostgreSQL stopped and restarted, the named HSM faults, a target registry down during
 * distribution, SIGKILL during a rotation and during a distribution round. The tests wait for
 * states (bounded, generously) and never assert these times; this page records them.
 *
 *   npx ts-node --transpile-only bench/drills.bench.ts
 *
 * Prints a Markdown section and writes .bench-out/drills.md. Bounded: a few minutes.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');

/** Column headings of the times every outage drill reports (test/drills/drill-kit.ts faultTimes). */
const COMMON: Array<[string, string]> = [
  ['faultToFirstFailureMs', 'fault → first failed answer'],
  ['faultToReadyz503Ms', 'fault → /readyz 503'],
  ['faultDurationMs', 'fault duration'],
  ['recoveryToFirstSuccessMs', 'recovery → first success'],
  ['recoveryToReadyz200Ms', 'recovery → /readyz 200'],
];

/** Drill-specific measures, by the name the drill reports them under. */
const LABELS: Record<string, string> = {
  faultToPoolRestoredMs: 'fault → pool at configured size',
  recoveryToPoolRestoredMs: 'recovery → pool at configured size',
  requestsInFlightAtFault: 'requests in flight at the fault',
  changeToOthersConvergedMs: 'truststore change → other regions converged',
  usAttemptsWhileDown: 'attempts on the down registry',
  registryBackToConvergedMs: 'registry back → converged',
  restartToReadyMs: 'restart → ready',
  restartToRotationCompletedMs: 'restart → rotation completed (ticks injected back to back)',
  restartToConvergedMs: 'restart → every target converged',
  targetsDeliveredAtKill: 'targets holding the new version at the kill',
};

type Measured = Record<string, unknown> & { drill: string };

function ms(value: unknown): string {
  if (value === null || value === undefined) return '—';
  if (typeof value !== 'number') return String(value);
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value} ms`;
}

function extras(row: Measured): string {
  return Object.entries(row)
    .filter(([key, value]) => LABELS[key] && value !== undefined)
    .map(([key, value]) => `${LABELS[key]}: ${key.endsWith('Ms') ? ms(value) : String(value)}`)
    .join('; ');
}

function main(): void {
  const started = performance.now();
  const report = path.join(os.tmpdir(), `signet-drills-${process.pid}.jsonl`);
  fs.rmSync(report, { force: true });
  const jest = spawnSync(
    process.execPath,
    [path.join(root, 'node_modules', 'jest', 'bin', 'jest.js'), '--runInBand', 'test/drills'],
    {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, SIGNET_DRILL_REPORT: report, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? '16' },
    },
  );
  const rows: Measured[] = fs.existsSync(report)
    ? fs
        .readFileSync(report, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line))
    : [];
  fs.rmSync(report, { force: true });

  const versions = spawnSync('sh', ['-c', 'softhsm2-util --version; /usr/bin/docker-registry --version'], {
    encoding: 'utf8',
  })
    .stdout.trim()
    .split('\n');
  const outages = rows.filter((r) => 'faultDurationMs' in r);
  const totals = rows.filter((r) => 'totalRequests' in r);
  const lines = [
    '## Fault drills (`bench/drills.bench.ts`)',
    '',
    'The drill tests (`test/drills/*.e2e-spec.ts`) with 8 clients signing continuously (EC-256, digest mode) through each fault: ' +
      'PostgreSQL stopped and restarted (in-process Signet, embedded PostgreSQL), the named HSM faults (in-process, SoftHSM2; ' +
      'CKR_DEVICE_REMOVED and CKR_TOKEN_NOT_PRESENT through the PKCS#11 fault seam, production recovery settings), ' +
      'a docker-registry down during a distribution round (three regions), and a real SIGKILL of `node dist/src/main.js` ' +
      'during a rotation and during a distribution round (nine targets, one push at a time, 5 s leases), the load following the restarted process. ' +
      'Each drill ends with the same invariants: audit chain and checkpoints verify, every delivered signature audited and verifying, ' +
      'every audit sign row an HSM signature, HSM reconciliation clean. "Recovery" is the end of the fault (database or registry started, ' +
      'fault disarmed, process restarted); the first success counts only requests started after it. Failed requests include answers that never came (status 0, dead process). ' +
      `Machine: ${os.cpus()[0]?.model}, ${os.cpus().length} cores, Node ${process.version}, SoftHSM2 ${versions[0] ?? '?'}, ${versions[1] ?? ''}; ${new Date().toISOString().slice(0, 10)}.`,
    '',
    `| drill | ${COMMON.map(([, label]) => label).join(' | ')} | failed / requests | other measures |`,
    `|---|${COMMON.map(() => '---:').join('|')}|---:|---|`,
    ...outages.map(
      (r) =>
        `| ${r.drill} | ${COMMON.map(([key]) => ms(r[key])).join(' | ')} | ${r.failedRequests} / ${r.requests} | ${extras(r)} |`,
    ),
    '',
    ...totals.map(
      (r) =>
        `- ${r.drill}: ${r.totalRequests} sign requests in ${r.loadSeconds} s, ${r.delivered} delivered, ${r.failed} failed.`,
    ),
    '',
    `Run time ${((performance.now() - started) / 1000).toFixed(0)} s (jest ${jest.status === 0 ? 'passed' : `FAILED with exit ${jest.status}: the drills above are those that reported`}).`,
  ];
  const text = lines.join('\n');
  console.log(text);
  const out = path.join(root, '.bench-out');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'drills.md'), `${text}\n`);
  if (jest.status !== 0) process.exitCode = 1;
}

main();
