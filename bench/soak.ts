/**
 * `npm run soak` (not part of `npm test`): a real Signet server on embedded defaults under sign load
 * at ~70 % of the rate it reached in a short probe, with rotations every minute, an emergency
 * rotation (revocation of the active version) every five minutes and a database pause (the
 * embedded PostgreSQL stopped with SIGSTOP for a few seconds) every three minutes. Samples RSS,
 * HSM sessions and database connections every 10 s; at the end checks that every 2xx signature has
 * its audit row and that RSS after warm-up grew ≤ 10 %. Writes .bench-out/soak.md.
 *
 *   SOAK_MINUTES=30 npm run soak        (default 30; SOAK_RATE overrides the probed rate)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { freePort, ServerProcess } from '../test/support/server-process';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 30);
const WARMUP_MS = Math.min(120_000, (MINUTES * 60_000) / 5);
const KEY = 'soak';

interface Sample {
  atSeconds: number;
  rssMb: number;
  postgresRssMb: number;
  hsmSessions: number;
  dbConnections: number;
  ok: number;
  unavailable: number;
  other: number;
}

function rssMb(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

function postgresPids(dataDir: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => {
      try {
        const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        return (
          cmd.includes('postgres') && (cmd.includes(dataDir) || fs.readlinkSync(`/proc/${pid}/cwd`).startsWith(dataDir))
        );
      } catch {
        return false;
      }
    });
}

async function main(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'signet-soak-'));
  fs.chmodSync(dataDir, 0o711);
  const server = new ServerProcess(await freePort(), {
    SIGNET_DATA_DIR: dataDir,
    SIGNET_LOG_LEVEL: 'warn',
    SIGNET_LOG_REQUESTS: 'false',
    UV_THREADPOOL_SIZE: '16',
    // The V8 heap cap `npm start` and the image give the server (SIGNET_MAX_HEAP_MB's default).
    NODE_OPTIONS: '--max-old-space-size=512',
  });
  await server.waitReady();
  const admin = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
  const api = async (method: string, url: string, token: string, body?: unknown) => {
    const response = await fetch(`${server.url}${url}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: response.status, json: (await response.json().catch(() => ({}))) as Record<string, unknown> };
  };
  await api('POST', '/v1/keys', admin, {
    name: KEY,
    keySpec: 'EC-256',
    subject: { C: 'US', ST: 'Soak', O: 'Signet', CN: KEY },
  });
  const signer = (await api('POST', '/v1/tokens', admin, { name: 'soak-signer', role: 'signer', keys: [KEY] })).json
    .token as string;
  const owner = JSON.parse(fs.readFileSync(path.join(dataDir, 'postgres', 'owner.json'), 'utf8')) as {
    port: number;
    postmaster: number;
  };
  const db = new Client({
    host: '127.0.0.1',
    port: owner.port,
    user: 'signet',
    password: fs.readFileSync(path.join(dataDir, 'postgres', 'password'), 'utf8').trim(),
    database: 'signet',
  });
  await db.connect();

  const counts = { ok: 0, unavailable: 0, other: 0 };
  const otherAnswers = new Map<string, number>();
  const tally = (what: string) => otherAnswers.set(what, (otherAnswers.get(what) ?? 0) + 1);
  const body = JSON.stringify({ digest: Buffer.alloc(32, 3).toString('base64'), hashAlgorithm: 'SHA-256' });
  const sign = async () => {
    try {
      const response = await fetch(`${server.url}/v1/keys/${KEY}/sign`, {
        method: 'POST',
        headers: { authorization: `Bearer ${signer}`, 'content-type': 'application/json' },
        body,
      });
      const text = await response.text();
      if (response.status === 200) counts.ok++;
      else {
        if (response.status === 503) counts.unavailable++;
        else counts.other++;
        // Which answers, by status and error code: a revoked active version is refused until the
        // emergency rotation lands; a 503 says which dependency (database, HSM, audit, key change).
        let code = '';
        try {
          code = String((JSON.parse(text) as { error?: { code?: string } }).error?.code ?? '');
        } catch {
          code = 'unparsable body';
        }
        tally(`${response.status} ${code}`.trim());
      }
    } catch (error) {
      counts.other++;
      const cause = (error as { cause?: { code?: string } }).cause?.code;
      tally(`client error: ${(error as Error).name}${cause ? ` (${cause})` : ''}`);
    }
  };

  // Probe: 32 callers back to back for 10 s.
  const probeEnd = Date.now() + 10_000;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (Date.now() < probeEnd) await sign();
    }),
  );
  const maxRate = counts.ok / 10;
  const rate = Number(process.env.SOAK_RATE ?? Math.round(maxRate * 0.7));
  counts.ok = counts.unavailable = counts.other = 0;
  otherAnswers.clear();
  const baselineAudit = Number((await db.query(`SELECT count(*) FROM audit_events WHERE type = 'sign'`)).rows[0].count);

  const started = Date.now();
  const end = started + MINUTES * 60_000;
  const samples: Sample[] = [];
  const events: string[] = [];
  let stopped = false;

  // Open-loop load: every 10 ms, launch the requests due in that slice.
  const inflight = new Set<Promise<void>>();
  const load = (async () => {
    let launched = 0;
    while (!stopped) {
      const due = Math.floor(((Date.now() - started) / 1000) * rate) - launched;
      for (let i = 0; i < due && inflight.size < 512; i++, launched++) {
        const p = sign().finally(() => inflight.delete(p));
        inflight.add(p);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    await Promise.all(inflight);
  })();

  const every = (ms: number, task: () => Promise<void>) => {
    const timer = setInterval(
      () =>
        void task().catch((e) =>
          events.push(`${Math.round((Date.now() - started) / 1000)}s task failed: ${(e as Error).message}`),
        ),
      ms,
    );
    return () => clearInterval(timer);
  };
  const stops = [
    every(60_000, async () => {
      const r = await api('POST', `/v1/keys/${KEY}/rotate`, admin, {});
      events.push(`${Math.round((Date.now() - started) / 1000)}s rotate → ${r.status}`);
    }),
    every(300_000, async () => {
      const key = (await api('GET', `/v1/keys/${KEY}`, admin)).json as {
        versions: Array<{ state: string; serial: string }>;
      };
      const active = key.versions.find((v) => v.state === 'active');
      if (!active) return;
      const r = await api('POST', `/v1/certificates/${active.serial}/revoke`, admin, { reason: 'keyCompromise' });
      events.push(
        `${Math.round((Date.now() - started) / 1000)}s revoke active ${active.serial.slice(0, 8)} → ${r.status}`,
      );
    }),
    every(180_000, async () => {
      process.kill(owner.postmaster, 'SIGSTOP');
      events.push(`${Math.round((Date.now() - started) / 1000)}s database paused`);
      await new Promise((r) => setTimeout(r, 5000));
      process.kill(owner.postmaster, 'SIGCONT');
    }),
    every(10_000, async () => {
      const ready = (await fetch(`${server.url}/readyz`)
        .then((r) => r.json())
        .catch(() => ({}))) as {
        checks?: { hsm?: { sessions?: number } };
        error?: { details?: { checks?: { hsm?: { sessions?: number } } } };
      };
      const connections = await db
        .query(`SELECT count(*) FROM pg_stat_activity WHERE datname = 'signet'`)
        .then((r) => Number(r.rows[0].count))
        .catch(() => -1);
      samples.push({
        atSeconds: Math.round((Date.now() - started) / 1000),
        rssMb: rssMb(server.pid),
        postgresRssMb: postgresPids(path.join(dataDir, 'postgres')).reduce((sum, pid) => sum + rssMb(pid), 0),
        hsmSessions: ready.checks?.hsm?.sessions ?? ready.error?.details?.checks?.hsm?.sessions ?? -1,
        dbConnections: connections,
        ...counts,
      });
    }),
  ];
  while (Date.now() < end) await new Promise((r) => setTimeout(r, 1000));
  stopped = true;
  stops.forEach((stop) => stop());
  await load;
  await new Promise((r) => setTimeout(r, 2000));
  const auditRows =
    Number((await db.query(`SELECT count(*) FROM audit_events WHERE type = 'sign'`)).rows[0].count) - baselineAudit;
  await db.end();
  server.kill('SIGTERM');
  const exit = await server.exited;

  const afterWarmup = samples.filter((s) => s.atSeconds * 1000 >= WARMUP_MS);
  // Medians of the first and last fifth after warm-up: a single sample can land on the burst of a
  // revocation or a database pause, which is not growth.
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
  const fifth = Math.max(1, Math.floor(afterWarmup.length / 5));
  const rssStart = median(afterWarmup.slice(0, fifth).map((s) => s.rssMb));
  const rssEnd = median(afterWarmup.slice(-fifth).map((s) => s.rssMb));
  const rssMax = Math.max(0, ...afterWarmup.map((s) => s.rssMb));
  const growth = rssStart ? ((rssEnd - rssStart) / rssStart) * 100 : 0;
  const lines = [
    '## Soak (bench/soak.ts)',
    '',
    `${MINUTES} min on ${os.cpus()[0]?.model}, ${os.cpus().length} cores, Node ${process.version}: sign load at ${rate}/s (70 % of the ${maxRate.toFixed(0)}/s probe), rotation every minute, revocation of the active version every 5 min, database paused (SIGSTOP 5 s) every 3 min.`,
    '',
    `- signatures: ${counts.ok} × 200, ${counts.unavailable} × 503, ${counts.other} other` +
      (otherAnswers.size
        ? ` (by status and code: ${[...otherAnswers]
            .sort((a, b) => b[1] - a[1])
            .map(([what, n]) => `${n} × ${what}`)
            .join(', ')})`
        : '') +
      `; audit sign rows ${auditRows} (${auditRows >= counts.ok ? '≥' : '<'} 2xx ✔︎ requirement: audit rows ≥ signatures delivered)`,
    `- RSS after warm-up (median of the first vs the last fifth): ${rssStart.toFixed(0)} MB → ${rssEnd.toFixed(0)} MB (${growth >= 0 ? '+' : ''}${growth.toFixed(1)} %; target ≤ +10 %), highest sample ${rssMax.toFixed(0)} MB; PostgreSQL ${afterWarmup.at(-1)?.postgresRssMb.toFixed(0) ?? '?'} MB`,
    `- server exit on SIGTERM: ${exit.code}`,
    '',
    '| t (s) | Signet RSS MB | PostgreSQL RSS MB | HSM sessions | DB connections | 200 | 503 | other |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...samples
      .filter((_, i) => i % Math.max(1, Math.floor(samples.length / 30)) === 0)
      .map(
        (s) =>
          `| ${s.atSeconds} | ${s.rssMb.toFixed(0)} | ${s.postgresRssMb.toFixed(0)} | ${s.hsmSessions} | ${s.dbConnections} | ${s.ok} | ${s.unavailable} | ${s.other} |`,
      ),
    '',
    'Events: ' + (events.length ? events.join('; ') : 'none'),
    '',
  ];
  const text = lines.join('\n');
  console.log(text);
  fs.mkdirSync(path.join(__dirname, '..', '.bench-out'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, '..', '.bench-out', 'soak.md'), text);
  fs.rmSync(dataDir, { recursive: true, force: true });
  if (auditRows < counts.ok || growth > 10) process.exitCode = 1;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
