/**
 * Signing with an OIDC ID token (workload identity) vs an `sgt_` token, same run, same server, 32
 * connections. A real Signet process (dist/, embedded PostgreSQL, SoftHSM2) and a real OpenID
 * Provider (`oidc-provider`, test/support/oidc-issuer.mjs) on loopback. Each connection reuses one
 * bearer value, as a pipeline signing many artifacts with one token does: the ID token is verified
 * once and then served from the verification cache, so the two rows should be close. The rows
 * alternate (sgt_, ID token, sgt_, ID token) so drift in the machine's load hits both.
 *
 * `npm run bench -- workload-identity` (after `npm run build`). SIGNET_BENCH_WINDOW_S sets the
 * seconds per row (default 15); a tiny value checks the harness without measuring anything.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { OidcIssuer } from '../test/support/oidc-issuer';
import { freePort, PROJECT_ROOT, ServerProcess } from '../test/support/server-process';

/** The part of autocannon's result used here (it ships no types). */
interface AutocannonResult {
  duration: number;
  '2xx': number;
  errors: number;
  timeouts: number;
  latency: { p50: number; p99: number };
  statusCodeStats?: Record<string, { count: number }>;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = require('autocannon') as (options: Record<string, unknown>) => Promise<AutocannonResult>;

const CONNECTIONS = 32;
const WINDOW_S = Number(process.env.SIGNET_BENCH_WINDOW_S ?? 15);
const WARMUP_S = Math.min(4, WINDOW_S);
const ROUNDS = 2;
const AUDIENCE = 'https://signet.bench';
const SERVER_UV_THREADS = process.env.SIGNET_BENCH_UV_THREADS ?? '6';

interface Row {
  kind: 'sgt_' | 'ID token';
  throughput: number;
  p50: number;
  p99: number;
  ok: number;
  other: string;
}

async function load(url: string, bearer: string, body: string, durationS: number): Promise<AutocannonResult> {
  return autocannon({ url, method: 'POST', headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' }, body, connections: CONNECTIONS, duration: durationS });
}

function row(kind: Row['kind'], result: AutocannonResult): Row {
  const other = Object.entries(result.statusCodeStats ?? {})
    .filter(([code]) => !code.startsWith('2'))
    .map(([code, { count }]) => `${count}×${code}`);
  if (result.errors) other.push(`${result.errors} errors`);
  if (result.timeouts) other.push(`${result.timeouts} timeouts`);
  return { kind, throughput: result['2xx'] / result.duration, p50: result.latency.p50, p99: result.latency.p99, ok: result['2xx'], other: other.join(', ') || 'none' };
}

async function api(base: string, admin: string, url: string, payload: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`${base}${url}`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify(payload) });
  const json = (await response.json()) as Record<string, unknown>;
  if (response.status !== 201) throw new Error(`${url}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

async function main(): Promise<void> {
  const started = Date.now();
  if (!fs.existsSync(path.join(PROJECT_ROOT, 'dist', 'src', 'main.js'))) throw new Error('dist/src/main.js is missing: run `npm run build` first (npm run bench does)');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'signet-bench-workload-'));
  const loadBefore = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const issuer = await OidcIssuer.start([{ id: AUDIENCE }]);
  const server = new ServerProcess(await freePort(), {
    SIGNET_DATA_DIR: dataDir,
    SIGNET_LOG_LEVEL: 'warn',
    SIGNET_LOG_REQUESTS: 'false',
    SIGNET_DISTRIBUTION_ALLOW_LOOPBACK: 'true',
    UV_THREADPOOL_SIZE: SERVER_UV_THREADS,
  });
  const rows: Row[] = [];
  let auditRows = 0;
  let workloadRows = 0;
  let totalOk = 0;
  try {
    await server.waitReady(120_000);
    const admin = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
    const base = server.url;
    await api(base, admin, '/v1/keys', { name: 'bench-ec256', keySpec: 'EC-256', subject: { C: 'US', ST: 'Washington', O: 'Bench', CN: 'bench-ec256' } });
    const sgt = (await api(base, admin, '/v1/tokens', { name: 'bench-signer', role: 'signer', keys: ['bench-ec256'] })).token as string;
    await api(base, admin, '/v1/identity-providers', { name: 'bench-ci', issuer: issuer.issuer, audiences: [AUDIENCE] });
    await api(base, admin, '/v1/workload-rules', { name: 'bench-release', provider: 'bench-ci', claims: { repository: 'acme/app', ref: 'refs/heads/main' }, keys: ['bench-ec256'] });
    // GitHub Actions' claim shape; the token lives 300 s, longer than every row together at the default window.
    const idToken = await issuer.mint(AUDIENCE, { sub: 'repo:acme/app:ref:refs/heads/main', repository: 'acme/app', ref: 'refs/heads/main', workflow_ref: 'acme/app/.github/workflows/release.yml@refs/heads/main' });
    const url = `${base}/v1/keys/bench-ec256/sign`;
    const body = JSON.stringify({ digest: createHash('sha256').update('bench artifact').digest('base64'), hashAlgorithm: 'SHA-256' });

    for (const bearer of [sgt, idToken]) totalOk += (await load(url, bearer, body, WARMUP_S))['2xx'];
    for (let round = 0; round < ROUNDS; round++) {
      for (const [kind, bearer] of [['sgt_', sgt], ['ID token', idToken]] as const) {
        const result = row(kind, await load(url, bearer, body, WINDOW_S));
        totalOk += result.ok;
        rows.push(result);
        process.stderr.write(`${kind}, ${CONNECTIONS} connections: ${result.throughput.toFixed(0)} signatures/s, p50 ${result.p50} ms, p99 ${result.p99} ms\n`);
      }
    }

    const postgresDir = path.join(dataDir, 'postgres');
    const owner = JSON.parse(fs.readFileSync(path.join(postgresDir, 'owner.json'), 'utf8')) as { port: number };
    const password = fs.readFileSync(path.join(postgresDir, 'password'), 'utf8').trim();
    const pg = new Client({ host: '127.0.0.1', port: owner.port, user: 'signet', password, database: 'signet' });
    await pg.connect();
    auditRows = Number((await pg.query(`SELECT count(*) AS n FROM audit_events WHERE type = 'sign'`)).rows[0].n);
    workloadRows = Number((await pg.query(`SELECT count(*) AS n FROM audit_events WHERE type = 'sign' AND actor #>> '{workload,rule}' = 'bench-release'`)).rows[0].n);
    await pg.end();
  } finally {
    server.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([server.exited, new Promise((resolve) => (timer = setTimeout(resolve, 30_000)))]);
    clearTimeout(timer);
    await issuer.stop();
  }
  fs.rmSync(dataDir, { recursive: true, force: true });

  const mean = (kind: Row['kind']) => {
    const of = rows.filter((r) => r.kind === kind);
    return of.reduce((sum, r) => sum + r.throughput, 0) / Math.max(1, of.length);
  };
  const idOk = rows.filter((r) => r.kind === 'ID token').reduce((sum, r) => sum + r.ok, 0);
  const lines = [
    '## Signing with an OIDC ID token vs an `sgt_` token (`bench/workload-identity.bench.ts`)',
    '',
    `${os.cpus()[0]?.model ?? 'CPU'}, ${os.availableParallelism()} cores, Node ${process.version}; ${new Date().toISOString().slice(0, 10)}. ` +
      `A real Signet process (dist/, embedded PostgreSQL, SoftHSM2, UV_THREADPOOL_SIZE=${SERVER_UV_THREADS}) and a real OpenID Provider (\`oidc-provider\`) on loopback; ` +
      `autocannon, ${CONNECTIONS} connections, \`POST /v1/keys/bench-ec256/sign\` with an EC-256 digest; each connection reuses one bearer value (one \`sgt_\` token, or one RS256 ID token matched by a workload rule). ` +
      `${WARMUP_S} s warm-up each, then ${ROUNDS} alternating rounds of ${WINDOW_S} s per row. Load average before the run: ${loadBefore}.`,
    '',
    '| round | bearer | signatures/s (2xx) | p50 ms | p99 ms | non-2xx / errors |',
    '|---:|---|---:|---:|---:|---|',
    ...rows.map((r, i) => `| ${Math.floor(i / 2) + 1} | ${r.kind} | ${r.throughput.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.other} |`),
    '',
    `- Mean: sgt_ ${mean('sgt_').toFixed(0)} signatures/s, ID token ${mean('ID token').toFixed(0)} signatures/s (ID token / sgt_ = ${(mean('ID token') / Math.max(1, mean('sgt_'))).toFixed(2)}).`,
    `- Audit check afterwards: ${auditRows} \`sign\` rows ≥ ${totalOk} 2xx responses: ${auditRows >= totalOk ? 'holds' : '**VIOLATED**'}; ${workloadRows} of them attributed to workload rule \`bench-release\` (≥ ${idOk} measured ID-token signatures).`,
    '',
    `Run time ${((Date.now() - started) / 1000).toFixed(0)} s.`,
    '',
  ];
  const markdown = lines.join('\n');
  process.stdout.write(markdown);
  fs.mkdirSync(path.join(PROJECT_ROOT, '.bench-out'), { recursive: true });
  fs.writeFileSync(path.join(PROJECT_ROOT, '.bench-out', 'workload-identity.md'), markdown);
  if (auditRows < totalOk || workloadRows < idOk) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
