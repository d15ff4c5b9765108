/**
 * Signing with an OIDC ID token (workload identity) vs an `sgt_` token, same run, same server, 32
 * connections. A real Signet process (dist/, embedded PostgreSQL, SoftHSM2) and a real OpenID
 * Provider (`oidc-provider`, test/support/oidc-issuer.mjs) on loopback. Each connection reuses one
 * bearer value, as a pipeline signing many artifacts with one token does: the ID token is verified
 * once and then served from the verification cache, so the two rows should be close. The rows
 * run A B B A (sgt_, ID token, ID token, sgt_, then again) so a steady drift in the machine's load
 * or in the database's size hits both alike; the last row is not always an ID-token row.
 * Each row also records the CPU time the server process and its database processes spent, per
 * signature (from /proc), which says where a difference comes from better than throughput does on
 * a shared machine.
 *
 * `npm run bench -- workload-identity` (after `npm run build`). SIGNET_BENCH_WINDOW_S sets the
 * seconds per row (default 15), SIGNET_BENCH_ROUNDS the number of A B B A rounds (default 1); a
 * tiny window checks the harness without measuring anything. Before each row (untimed;
 * SIGNET_BENCH_SETTLE=0 skips it) the bench takes an audit checkpoint, vacuums and analyses the
 * audit tables and takes a PostgreSQL checkpoint, so background work caused by earlier rows does
 * not land on whichever row comes next. It did: the audit checkpoint's chain verification (every
 * 60 s, ~1.7 s of event loop per minute of rows) fell in the second ID-token row of the old
 * A B A B order, and in rows 3 and 6 (both ID-token rows) of A B B A A B B A.
 * SIGNET_BENCH_CPU_PROF=<dir> runs the
 * server under the V8 CPU profiler (bench/cpu-profiled-server.js) and writes one profile per row
 * into <dir> (<dir>/rows.json names the file of each row).
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
const WARMUP_S = Math.min(8, WINDOW_S);
const ROUNDS = Number(process.env.SIGNET_BENCH_ROUNDS ?? 1);
const CPU_PROF_DIR = process.env.SIGNET_BENCH_CPU_PROF;
const SETTLE = process.env.SIGNET_BENCH_SETTLE !== '0';
const AUDIENCE = 'https://signet.bench';
const SERVER_UV_THREADS = process.env.SIGNET_BENCH_UV_THREADS ?? '6';

interface Row {
  kind: 'sgt_' | 'ID token';
  throughput: number;
  p50: number;
  p99: number;
  ok: number;
  other: string;
  /** CPU µs per 2xx of the server process (all threads) and of its database processes. */
  serverCpuUs: number;
  databaseCpuUs: number;
  /** The untimed audit checkpoint after the row: how long verifying and signing the row's audit rows took. */
  checkpointMs?: number;
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** utime + stime (clock ticks) of `root` and, separately, of all its descendants and their exited children, from /proc. */
function cpuTicks(root: number): { own: number; descendants: number } {
  const stats = new Map<number, { ppid: number; ticks: number; children: number }>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // Fields after the parenthesised command name (which may contain spaces): state ppid ... utime(14)
    // stime(15) cutime(16) cstime(17); the last two hold what exited children (a database backend) spent.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    stats.set(Number(entry), {
      ppid: Number(fields[1]),
      ticks: Number(fields[11]) + Number(fields[12]),
      children: Number(fields[13]) + Number(fields[14]),
    });
  }
  const isDescendant = (pid: number): boolean => {
    for (let p = stats.get(pid)?.ppid; p !== undefined && p > 1; p = stats.get(p)?.ppid) if (p === root) return true;
    return false;
  };
  let descendants = 0;
  for (const [pid, { ticks, children }] of stats) if (isDescendant(pid)) descendants += ticks + children;
  return { own: stats.get(root)?.ticks ?? 0, descendants };
}

async function load(url: string, bearer: string, body: string, durationS: number): Promise<AutocannonResult> {
  return autocannon({
    url,
    method: 'POST',
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    body,
    connections: CONNECTIONS,
    duration: durationS,
  });
}

function row(kind: Row['kind'], result: AutocannonResult, cpu: { own: number; descendants: number }): Row {
  const other = Object.entries(result.statusCodeStats ?? {})
    .filter(([code]) => !code.startsWith('2'))
    .map(([code, { count }]) => `${count}×${code}`);
  if (result.errors) other.push(`${result.errors} errors`);
  if (result.timeouts) other.push(`${result.timeouts} timeouts`);
  const perSignatureUs = (ticks: number) => (ticks * 1e6) / TICKS_PER_SECOND / Math.max(1, result['2xx']);
  return {
    kind,
    throughput: result['2xx'] / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok: result['2xx'],
    other: other.join(', ') || 'none',
    serverCpuUs: perSignatureUs(cpu.own),
    databaseCpuUs: perSignatureUs(cpu.descendants),
  };
}

async function api(base: string, admin: string, url: string, payload: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`${base}${url}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify(payload),
  });
  const json = (await response.json()) as Record<string, unknown>;
  if (response.status !== 201) throw new Error(`${url}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

async function main(): Promise<void> {
  const started = Date.now();
  if (!fs.existsSync(path.join(PROJECT_ROOT, 'dist', 'src', 'main.js')))
    throw new Error('dist/src/main.js is missing: run `npm run build` first (npm run bench does)');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'signet-bench-workload-'));
  const loadBefore = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const issuer = await OidcIssuer.start([{ id: AUDIENCE }]);
  const server = new ServerProcess(
    await freePort(),
    {
      SIGNET_DATA_DIR: dataDir,
      SIGNET_LOG_LEVEL: 'warn',
      SIGNET_LOG_REQUESTS: 'false',
      SIGNET_DISTRIBUTION_ALLOW_LOOPBACK: 'true',
      UV_THREADPOOL_SIZE: SERVER_UV_THREADS,
      ...(CPU_PROF_DIR ? { SIGNET_BENCH_CPU_PROF: CPU_PROF_DIR } : {}),
    },
    ...(CPU_PROF_DIR ? [path.join(__dirname, 'cpu-profiled-server.js')] : []),
  );
  // Profile files: 0 is everything before the first row; row i is file 2i+1 (2i+2 is the gap after it).
  const profiledRows: Array<{ kind: Row['kind']; file: string }> = [];
  const rows: Row[] = [];
  let pg: Client | undefined;
  let auditRows = 0;
  /** Wall-clock span of each measured row, to place the database's own background work. */
  const spans: Array<{ start: number; end: number }> = [];
  const databaseWork: string[] = [];
  let workloadRows = 0;
  let totalOk = 0;
  try {
    await server.waitReady(120_000);
    const admin = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
    const base = server.url;
    await api(base, admin, '/v1/keys', {
      name: 'bench-ec256',
      keySpec: 'EC-256',
      subject: { C: 'US', ST: 'Washington', O: 'Bench', CN: 'bench-ec256' },
    });
    const sgt = (await api(base, admin, '/v1/tokens', { name: 'bench-signer', role: 'signer', keys: ['bench-ec256'] }))
      .token as string;
    await api(base, admin, '/v1/identity-providers', {
      name: 'bench-ci',
      issuer: issuer.issuer,
      audiences: [AUDIENCE],
    });
    await api(base, admin, '/v1/workload-rules', {
      name: 'bench-release',
      provider: 'bench-ci',
      claims: { repository: 'acme/app', ref: 'refs/heads/main' },
      keys: ['bench-ec256'],
    });
    // GitHub Actions' claim shape; the token lives 300 s, longer than every row together at the default window.
    const idToken = await issuer.mint(AUDIENCE, {
      sub: 'repo:acme/app:ref:refs/heads/main',
      repository: 'acme/app',
      ref: 'refs/heads/main',
      workflow_ref: 'acme/app/.github/workflows/release.yml@refs/heads/main',
    });
    const url = `${base}/v1/keys/bench-ec256/sign`;
    const body = JSON.stringify({
      digest: createHash('sha256').update('bench artifact').digest('base64'),
      hashAlgorithm: 'SHA-256',
    });

    const postgresDir = path.join(dataDir, 'postgres');
    const owner = JSON.parse(fs.readFileSync(path.join(postgresDir, 'owner.json'), 'utf8')) as { port: number };
    const password = fs.readFileSync(path.join(postgresDir, 'password'), 'utf8').trim();
    pg = new Client({ host: '127.0.0.1', port: owner.port, user: 'signet', password, database: 'signet' });
    pg.on('error', () => undefined); // the server's shutdown ends it; errors of queries still throw
    await pg.connect();

    for (const bearer of [sgt, idToken]) totalOk += (await load(url, bearer, body, WARMUP_S))['2xx'];
    const a = ['sgt_', sgt] as const;
    const b = ['ID token', idToken] as const;
    for (let round = 0; round < ROUNDS; round++) {
      for (const [kind, bearer] of [a, b, b, a]) {
        // Every row starts from the same database state: what earlier rows left for autovacuum,
        // autoanalyze and the checkpointer is done now, untimed, instead of landing in a later row.
        if (SETTLE) {
          // An audit checkpoint verifies every row since the last one on the event loop (about 1.7 s per
          // minute of rows here): left to its 60 s timer it lands in whichever row is running. Taken
          // here, it verifies exactly the previous row's audit rows; its time is reported per row.
          const checkpointStarted = performance.now();
          await api(base, admin, '/v1/audit/checkpoints', {});
          if (rows.length > 0) rows[rows.length - 1].checkpointMs = performance.now() - checkpointStarted;
          await pg.query('VACUUM (ANALYZE) audit_events'); // alone: VACUUM refuses to run in a (multi-statement) transaction
          await pg.query('CHECKPOINT');
        }
        if (CPU_PROF_DIR) server.kill('SIGUSR2');
        const before = cpuTicks(server.pid);
        const start = Date.now();
        const result = await load(url, bearer, body, WINDOW_S);
        spans.push({ start, end: Date.now() });
        const after = cpuTicks(server.pid);
        if (CPU_PROF_DIR) server.kill('SIGUSR2');
        const measured = row(kind, result, {
          own: after.own - before.own,
          descendants: after.descendants - before.descendants,
        });
        profiledRows.push({ kind, file: `${2 * rows.length + 1}.cpuprofile` });
        totalOk += measured.ok;
        rows.push(measured);
        process.stderr.write(
          `${kind}, ${CONNECTIONS} connections: ${measured.throughput.toFixed(0)} signatures/s, p50 ${measured.p50} ms, p99 ${measured.p99} ms; ` +
            `CPU per signature: server ${measured.serverCpuUs.toFixed(0)} µs, database ${measured.databaseCpuUs.toFixed(0)} µs\n`,
        );
      }
    }
    if (SETTLE) {
      const checkpointStarted = performance.now();
      await api(base, admin, '/v1/audit/checkpoints', {});
      rows[rows.length - 1].checkpointMs = performance.now() - checkpointStarted;
    }
    if (CPU_PROF_DIR) {
      fs.writeFileSync(path.join(CPU_PROF_DIR, 'rows.json'), JSON.stringify(profiledRows));
      // The last row's profile is written when the server handles the signal: before SIGTERM.
      const last = path.join(CPU_PROF_DIR, profiledRows[profiledRows.length - 1].file);
      for (let waited = 0; waited < 30_000 && !fs.existsSync(last); waited += 100)
        await new Promise((resolve) => setTimeout(resolve, 100));
    }

    auditRows = Number((await pg.query(`SELECT count(*) AS n FROM audit_events WHERE type = 'sign'`)).rows[0].n);
    workloadRows = Number(
      (
        await pg.query(
          `SELECT count(*) AS n FROM audit_events WHERE type = 'sign' AND actor #>> '{workload,rule}' = 'bench-release'`,
        )
      ).rows[0].n,
    );
    // PostgreSQL's background work during the rows: autovacuum / autoanalyze of the audit tables
    // (the last run of each, placed in its row) and checkpoints (counts only).
    const rowAt = (at: Date | null) => {
      const i = at ? spans.findIndex((span) => at.getTime() >= span.start && at.getTime() <= span.end) : -1;
      return i < 0 ? 'outside the rows' : `during row ${i + 1} (${rows[i].kind})`;
    };
    const tables = await pg.query(
      `SELECT relname, autovacuum_count AS vacuums, autoanalyze_count AS analyzes, last_autovacuum, last_autoanalyze FROM pg_stat_user_tables WHERE relname LIKE 'audit_events%' AND (autovacuum_count > 0 OR autoanalyze_count > 0) ORDER BY relname`,
    );
    for (const t of tables.rows as Array<{
      relname: string;
      vacuums: string;
      analyzes: string;
      last_autovacuum: Date | null;
      last_autoanalyze: Date | null;
    }>) {
      databaseWork.push(
        `${t.relname}: ${t.vacuums} autovacuum(s), last ${rowAt(t.last_autovacuum)}; ${t.analyzes} autoanalyze(s), last ${rowAt(t.last_autoanalyze)}`,
      );
    }
    // pg_stat_checkpointer from PostgreSQL 17, pg_stat_bgwriter before.
    const checkpointer = (await pg.query(`SELECT to_regclass('pg_catalog.pg_stat_checkpointer') IS NOT NULL AS v17`))
      .rows[0].v17 as boolean;
    const checkpoints = (
      await pg.query(
        checkpointer
          ? 'SELECT num_timed AS timed, num_requested AS requested FROM pg_stat_checkpointer'
          : 'SELECT checkpoints_timed AS timed, checkpoints_req AS requested FROM pg_stat_bgwriter',
      )
    ).rows[0] as { timed: string; requested: string };
    databaseWork.push(
      `checkpoints since start-up: ${checkpoints.timed} timed, ${checkpoints.requested} requested${SETTLE ? ` (${4 * ROUNDS} of them by the bench)` : ''}`,
    );
  } finally {
    await pg?.end().catch(() => undefined);
    server.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([server.exited, new Promise((resolve) => (timer = setTimeout(resolve, 30_000)))]);
    clearTimeout(timer);
    await issuer.stop();
  }
  fs.rmSync(dataDir, { recursive: true, force: true });

  const meanOf = (kind: Row['kind'], value: (r: Row) => number) => {
    const of = rows.filter((r) => r.kind === kind);
    return of.reduce((sum, r) => sum + value(r), 0) / Math.max(1, of.length);
  };
  const mean = (kind: Row['kind']) => meanOf(kind, (r) => r.throughput);
  const loadAfter = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const idOk = rows.filter((r) => r.kind === 'ID token').reduce((sum, r) => sum + r.ok, 0);
  const lines = [
    '## Signing with an OIDC ID token vs an `sgt_` token (`bench/workload-identity.bench.ts`)',
    '',
    `${os.cpus()[0]?.model ?? 'CPU'}, ${os.availableParallelism()} cores, Node ${process.version}; ${new Date().toISOString().slice(0, 10)}. ` +
      `A real Signet process (dist/, embedded PostgreSQL, SoftHSM2, UV_THREADPOOL_SIZE=${SERVER_UV_THREADS}) and a real OpenID Provider (\`oidc-provider\`) on loopback; ` +
      `autocannon, ${CONNECTIONS} connections, \`POST /v1/keys/bench-ec256/sign\` with an EC-256 digest; each connection reuses one bearer value (one \`sgt_\` token, or one RS256 ID token matched by a workload rule). ` +
      `${WARMUP_S} s warm-up each, then ${ROUNDS} round(s) of four ${WINDOW_S} s rows in the order sgt_, ID token, ID token, sgt_` +
      `${SETTLE ? ", each after an untimed audit checkpoint (`POST /v1/audit/checkpoints`, which verifies the previous row's audit rows), `VACUUM (ANALYZE) audit_events` and `CHECKPOINT`" : ' (no checkpoints, VACUUM or CHECKPOINT between rows)'}. ` +
      `CPU columns: CPU time per signature of the server process (all its threads) and of its PostgreSQL processes, from /proc. ` +
      `Load average before the run: ${loadBefore}; after: ${loadAfter}.`,
    '',
    '| round | bearer | signatures/s (2xx) | p50 ms | p99 ms | server CPU µs/signature | database CPU µs/signature | audit checkpoint after the row, µs/signature | non-2xx / errors |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map(
      (r, i) =>
        `| ${Math.floor(i / 4) + 1} | ${r.kind} | ${r.throughput.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.serverCpuUs.toFixed(0)} | ${r.databaseCpuUs.toFixed(0)} | ` +
        `${r.checkpointMs === undefined ? '-' : ((r.checkpointMs * 1000) / Math.max(1, r.ok)).toFixed(0)} | ${r.other} |`,
    ),
    '',
    `- Mean: sgt_ ${mean('sgt_').toFixed(0)} signatures/s, ID token ${mean('ID token').toFixed(0)} signatures/s (ID token / sgt_ = ${(mean('ID token') / Math.max(1, mean('sgt_'))).toFixed(2)}); ` +
      `CPU per signature, server + database: sgt_ ${meanOf('sgt_', (r) => r.serverCpuUs + r.databaseCpuUs).toFixed(0)} µs, ID token ${meanOf('ID token', (r) => r.serverCpuUs + r.databaseCpuUs).toFixed(0)} µs.`,
    `- Database background work (rows numbered from 1 in the order above): ${databaseWork.join('; ') || 'none'}.`,
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
