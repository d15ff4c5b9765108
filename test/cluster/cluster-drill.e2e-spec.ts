import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { DEV_ROOT_CA } from '../../src/ca/dev-hierarchy.bootstrap';
import { EmbeddedPostgres } from '../../src/database/embedded-postgres';
import type { DistributionStatus } from '../../src/distribution/distribution-status.service';
import { FAST_DISTRIBUTION_ENV, targetsOf, waitConverged } from '../distribution/distribution-helpers';
import { expectDrillInvariants, reportDrill, SignLoad, SignRecord, sleep, waitFor } from '../drills/drill-kit';
import { openssl, SUBJECT, writePem } from '../rotation/rotation-helpers';
import { SignetProcess, startSignet } from '../rotation/rotation-process';
import { query } from '../support/database';
import { TestRegistry } from '../support/registry';
import { ensureBuilt, freePort, tempDir } from '../support/server-process';
import {
  distributionPostgresBinDir,
  EXPAND_MIGRATION,
  keepAliveTransport,
  newerBuild,
  NginxProcess,
  nginxBinary,
  signetNginxConf,
} from './cluster-kit';

const KEY = 'cluster';
const DRAIN_MS = 5000; // the default SIGNET_DRAIN_DELAY_MS; deploy/nginx/signet.conf's keepalive_timeout is below it
/** nginx's fail_timeout (deploy/nginx/signet.conf) and a margin: a fault window ends this long after recovery. */
const SETTLE_MS = 3000;

interface Window {
  name: string;
  from: number;
  to: number;
  graceful: boolean;
}

/**
 * The multi-replica drill: three Signet processes (node dist/src/main.js) on one Debian PostgreSQL
 * (its own cluster in a temp dir, least-privilege service role, migrations as the owner role) and one
 * shared SoftHSM2 token, behind nginx running deploy/nginx/signet.conf. A steady sign load through
 * nginx (keep-alive; half the clients with an idempotencyKey mirrored in Idempotency-Key, half
 * without) runs through: a SIGKILL and restart of one replica; a graceful rolling restart, the last
 * replica on a newer build with an expand migration; a PostgreSQL restart; a rotation, a revocation
 * and a distribution round. After each: the drill invariants (audit chain and checkpoints verify,
 * every delivered signature audited and verifying, HSM reconciliation clean), and failed requests
 * only inside the measured fault windows, none in the rolling restart.
 */
describe('cluster drill: three replicas behind nginx on Debian PostgreSQL', () => {
  const pgBin = distributionPostgresBinDir();
  const nginxBin = nginxBinary();

  it('loses no request in a rolling restart, fails only inside fault windows, and keeps one verifying audit chain', async () => {
    if (!pgBin)
      throw new Error(
        'the cluster drill needs Debian PostgreSQL (apt-get install postgresql: /usr/lib/postgresql/<major>/bin); .ci/run installs it',
      );
    if (!nginxBin) throw new Error('the cluster drill needs nginx (apt-get install nginx); .ci/run installs it');
    ensureBuilt();
    const base = tempDir('cluster-drill-');
    const pg = new EmbeddedPostgres({
      baseDir: path.join(base, 'postgres'),
      binDir: pgBin,
      database: 'signet',
      port: await freePort(),
    });
    const registry = await TestRegistry.start({ auth: 'none' });
    const ports = [await freePort(), await freePort(), await freePort()];
    const windows: Window[] = [];
    const measured: Record<string, unknown> = {};
    const replicas: SignetProcess[] = [];
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    let nginx: NginxProcess | undefined;
    const loads: SignLoad[] = [];
    try {
      const { ownerUrl, appUrl } = await pg.ensureServiceRoles(await pg.start());
      const env = {
        DATABASE_URL: appUrl,
        SIGNET_MIGRATION_DATABASE_URL: ownerUrl,
        SIGNET_DATA_DIR: path.join(base, 'data'),
        SIGNET_DRAIN_DELAY_MS: String(DRAIN_MS),
        SIGNET_TRUST_PROXY: '127.0.0.1',
        ...FAST_DISTRIBUTION_ENV,
      };
      const start = (i: number, script?: string) => startSignet(env, { port: ports[i], script });
      // The first start migrates and bootstraps the dev CA and the token; the other two join it.
      replicas[0] = await start(0);
      [replicas[1], replicas[2]] = await Promise.all([start(1), start(2)]);
      const admin = replicas[0].adminToken;
      fs.mkdirSync(path.join(base, 'nginx'));
      const nginxPort = await freePort();
      nginx = await NginxProcess.start(
        nginxBin,
        path.join(base, 'nginx'),
        nginxPort,
        signetNginxConf(nginxPort, ports),
      );
      const viaNginx = nginx.url;

      const api = async (
        method: string,
        url: string,
        body?: unknown,
        baseUrl = viaNginx,
        // eslint-disable-next-line @typescript-eslint/no-explicit-any -- bodies are read loosely
      ): Promise<{ status: number; body: any }> => {
        const response = await fetch(`${baseUrl}${url}`, {
          method,
          headers: {
            authorization: `Bearer ${admin}`,
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await response.text();
        return { status: response.status, body: text ? JSON.parse(text) : undefined };
      };
      const ok = async (method: string, url: string, body?: unknown) => {
        const response = await api(method, url, body);
        if (response.status >= 300)
          throw new Error(`${method} ${url} → ${response.status}: ${JSON.stringify(response.body)}`);
        return response.body;
      };

      await ok('POST', '/v1/keys', { name: KEY, keySpec: 'EC-256', subject: { ...SUBJECT, CN: KEY } });
      for (const victim of ['ocsp-victim-1', 'ocsp-victim-2'])
        await ok('POST', '/v1/keys', { name: victim, keySpec: 'EC-256', subject: { ...SUBJECT, CN: victim } });
      await ok('POST', '/v1/truststores', { name: 'fleet', cas: [DEV_ROOT_CA] });
      await ok('POST', '/v1/regions', { name: 'r0' });
      for (const name of ['t0', 't1'])
        await ok('POST', '/v1/regions/r0/targets', {
          name,
          kind: 'oci-registry',
          endpoint: registry.url,
          repository: `signet/${name}`,
          truststore: 'fleet',
        });
      const distribution = async (): Promise<DistributionStatus> => ok('GET', '/v1/distribution');
      await waitConverged(distribution, undefined, 120_000);
      const signer = (await ok('POST', '/v1/tokens', { name: 'cluster-signer', role: 'signer', keys: [KEY] })).token;

      loads.push(
        new SignLoad(
          keepAliveTransport(() => viaNginx, signer, KEY, { agent, idempotent: true }),
          { clients: 2 },
        ).start(),
      );
      loads.push(
        new SignLoad(
          keepAliveTransport(() => viaNginx, signer, KEY, { agent }),
          { clients: 2 },
        ).start(),
      );
      const [keyed, plain] = loads;
      const all = () => ({
        records: [...keyed.records, ...plain.records],
        delivered: [...keyed.delivered, ...plain.delivered],
      });
      const deliveredSince = async (since: number, count: number) => {
        await keyed.deliveredSince(since, count / 2);
        await plain.deliveredSince(since, count / 2);
      };
      const failedIn = (from: number, to: number) =>
        all().records.filter((r) => r.status !== 200 && r.at >= from && r.startedAt <= to);
      const describeFailures = (records: SignRecord[]) =>
        records.map((r) => ({
          status: r.status,
          code: r.error?.code ?? r.failure?.code,
          at: new Date(r.at).toISOString(),
        }));
      /**
       * Revokes the certificate of `victimKey` on replica 0 and returns how long (ms) after its 200
       * each of the other two took until its OCSP answer said revoked (asked directly, every 20 ms). Every
       * replica answered "good" just before, so each had the answer cached.
       */
      const revokeCallMs: number[] = [];
      const revocationSeen = async (victimKey: string): Promise<number[]> => {
        const victim = await ok('POST', `/v1/keys/${victimKey}/sign`, {
          digest: Buffer.alloc(32, 7).toString('base64'),
          hashAlgorithm: 'SHA-256',
        });
        const dir = tempDir('cluster-ocsp-');
        writePem(dir, 'leaf.pem', Buffer.from(victim.certificateChain[0], 'base64'));
        writePem(dir, 'issuer.pem', Buffer.from(victim.certificateChain[1], 'base64'));
        const ocspPath = new URL(openssl(['x509', '-in', 'leaf.pem', '-noout', '-ocsp_uri'], dir).out.trim()).pathname;
        expect(
          openssl(['ocsp', '-issuer', 'issuer.pem', '-cert', 'leaf.pem', '-no_nonce', '-reqout', 'req.der'], dir).ok,
        ).toBe(true);
        const ocspRequest = fs.readFileSync(path.join(dir, 'req.der'));
        let n = 0;
        const ocspAnswer = async (replica: SignetProcess): Promise<Buffer> => {
          const response = await fetch(`${replica.server.url}${ocspPath}`, {
            method: 'POST',
            headers: { 'content-type': 'application/ocsp-request' },
            body: ocspRequest,
          });
          return Buffer.from(await response.arrayBuffer());
        };
        const statusOf = (der: Buffer): string => {
          const file = `resp-${n++}.der`;
          fs.writeFileSync(path.join(dir, file), der);
          return (
            /Cert Status: (\w+)/.exec(openssl(['ocsp', '-respin', file, '-resp_text', '-noverify'], dir).out)?.[1] ??
            'unparsed'
          );
        };
        const before = await Promise.all(replicas.map(ocspAnswer));
        expect(before.map(statusOf)).toEqual(['good', 'good', 'good']);
        const serial = new X509Certificate(Buffer.from(victim.certificateChain[0], 'base64')).serialNumber;
        const requestedAt = Date.now();
        expect(
          (
            await api(
              'POST',
              `/v1/certificates/${serial}/revoke`,
              { reason: 'cessationOfOperation' },
              replicas[0].server.url,
            )
          ).status,
        ).toBe(200);
        const revokeAt = Date.now();
        revokeCallMs.push(revokeAt - requestedAt);
        // Polled every 10 ms without parsing: a replica answers its cached "good" bytes until the
        // revocation reaches it; only a changed answer is parsed (the parse is not in the timing).
        return Promise.all(
          [1, 2].map(async (i) => {
            let known = before[i];
            for (;;) {
              const der = await ocspAnswer(replicas[i]);
              const at = Date.now();
              if (!der.equals(known)) {
                if (statusOf(der) === 'revoked') return at - revokeAt;
                known = der;
              }
              if (at - revokeAt > 30_000) throw new Error(`replica ${i} still answers good 30 s after the revocation`);
              await sleep(10);
            }
          }),
        );
      };
      const invariants = async () => {
        // Read while the load runs: signatures delivered before the audit rows are read must be among
        // them; rows of requests still in flight (or answered since) match the messages sent.
        const delivered = all().delivered;
        const live = {
          get records() {
            return [
              ...all().records,
              ...loads.flatMap((load) =>
                [...load.inFlight].map((message) => ({ message, status: -1, startedAt: 0, at: 0 })),
              ),
            ];
          },
          delivered,
        };
        await expectDrillInvariants(
          {
            api: (method, url, body) => api(method, url, body),
            databaseUrl: appUrl,
            reconcile: async () => (await replicas[0].hsm()).reconciliation,
          },
          live,
          KEY,
        );
        // Every failure so far lies inside a fault window, and none inside a graceful one.
        const outside = all().records.filter(
          (r) => r.status !== 200 && !windows.some((w) => !w.graceful && r.at >= w.from && r.startedAt <= w.to),
        );
        expect(describeFailures(outside)).toEqual([]);
      };
      await deliveredSince(0, 200);

      // 0. A revocation on one replica reaches the other two's OCSP answers (before any fault).
      measured.revocationBeforeFaultsSeenMs = await revocationSeen('ocsp-victim-1');
      expect(Math.max(...(measured.revocationBeforeFaultsSeenMs as number[]))).toBeLessThanOrEqual(1000);

      // 1. SIGKILL one replica, start it again.
      {
        const from = Date.now();
        replicas[1].server.kill('SIGKILL');
        await replicas[1].server.exited;
        await sleep(1000);
        replicas[1] = await start(1);
        const ready = Date.now();
        await deliveredSince(ready, 100);
        windows.push({ name: 'SIGKILL', from, to: ready + SETTLE_MS, graceful: false });
        measured.sigkill = {
          restartToReadyMs: ready - from - 1000,
          failed: failedIn(from, ready + SETTLE_MS).length,
          requests: all().records.filter((r) => r.at >= from && r.startedAt <= ready + SETTLE_MS).length,
        };
        await sleep(SETTLE_MS);
        await invariants();
      }

      // 2. Rolling restart, one at a time (SIGTERM, start, ready); the last one on a newer build
      //    whose expand migration runs while the two old replicas serve.
      {
        const from = Date.now();
        const build = newerBuild(tempDir('cluster-newer-build-'));
        const steps: Array<Record<string, number>> = [];
        for (const i of [0, 1, 2]) {
          const termAt = Date.now();
          replicas[i].server.kill('SIGTERM');
          expect(await replicas[i].server.exited).toEqual({ code: 0, signal: null });
          const exitedAt = Date.now();
          replicas[i] = await start(i, i === 2 ? build : undefined);
          steps.push({ drainAndStopMs: exitedAt - termAt, startToReadyMs: Date.now() - exitedAt });
        }
        const to = Date.now() + 1000;
        await deliveredSince(to, 100);
        windows.push({ name: 'rolling restart', from, to, graceful: true });
        const inWindow = (records: SignRecord[]) =>
          records.filter((r) => r.status !== 200 && r.at >= from && r.startedAt <= to);
        const [keyedFailed, plainFailed] = [inWindow(keyed.records), inWindow(plain.records)];
        measured.rollingRestart = {
          steps,
          failed: keyedFailed.length + plainFailed.length,
          keyedFailed: keyedFailed.length,
          plainFailed: plainFailed.length,
          requests: all().records.filter((r) => r.at >= from && r.startedAt <= to).length,
          durationMs: to - from,
        };
        // None lost, with or without an idempotency key: a replica keeps its keep-alive connections
        // open while it drains, so nginx opens none to it as its listener closes; after that,
        // nginx's new connections are refused (retried elsewhere, any method) and its pooled ones
        // end after an answer with `Connection: close`. (Closing connections during the drain
        // instead cost one unkeyed POST in ~4,000 in one run of five: a connection opened just as
        // the listener closed, reset in the accept queue.)
        expect(describeFailures(keyedFailed)).toEqual([]);
        expect(describeFailures(plainFailed)).toEqual([]);
        // Old and new code side by side: the new replica applied the expand migration; keys written by old replicas leave it null.
        expect(
          (
            await query<{ name: string }>(ownerUrl, `SELECT name FROM typeorm_migrations WHERE name = $1`, [
              EXPAND_MIGRATION,
            ])
          ).length,
        ).toBe(1);
        for (const i of [0, 1])
          expect(
            (
              await api(
                'POST',
                '/v1/keys',
                { name: `after-expand-${i}`, keySpec: 'EC-256', subject: { ...SUBJECT, CN: `after-expand-${i}` } },
                replicas[i].server.url,
              )
            ).status,
          ).toBe(201);
        expect(
          await query(
            ownerUrl,
            `SELECT name, drill_release_note FROM signing_keys WHERE name LIKE 'after-expand-%' ORDER BY name`,
          ),
        ).toEqual([
          { name: 'after-expand-0', drill_release_note: null },
          { name: 'after-expand-1', drill_release_note: null },
        ]);
        await invariants();
      }

      // 3. PostgreSQL restarted (fast shutdown, start on the same port).
      {
        const from = Date.now();
        await pg.stop();
        await sleep(1000);
        await pg.start();
        const up = Date.now();
        await waitFor(
          'every replica ready again',
          async () =>
            (
              await Promise.all(replicas.map(async (r) => (await fetch(`${r.server.url}/readyz`)).status === 200))
            ).every(Boolean),
          60_000,
          100,
        );
        const ready = Date.now();
        await deliveredSince(ready, 100);
        windows.push({ name: 'PostgreSQL restart', from, to: ready + SETTLE_MS, graceful: false });
        measured.postgresRestart = {
          downMs: up - from,
          upToAllReadyMs: ready - up,
          failed: failedIn(from, ready + SETTLE_MS).length,
          requests: all().records.filter((r) => r.at >= from && r.startedAt <= ready + SETTLE_MS).length,
        };
        await sleep(SETTLE_MS);
        await invariants();
      }

      // 4. During the load: a rotation, a revocation (seen by the other replicas' OCSP within 1 s) and a distribution round.
      {
        const from = Date.now();
        const rotation = await ok('POST', `/v1/keys/${KEY}/rotate`, { reason: 'cluster drill' });
        expect(rotation).toBeDefined();
        await waitFor(
          'the rotation to activate',
          async () =>
            (await query<{ state: string }>(appUrl, `SELECT state FROM rotations WHERE subject = $1`, [KEY]))[0]
              ?.state === 'activated',
          120_000,
          50,
        );
        const rotatedAt = Date.now();

        const seenMs = await revocationSeen('ocsp-victim-2');
        expect(seenMs).toEqual([expect.any(Number), expect.any(Number)]);
        expect(Math.max(...seenMs)).toBeLessThanOrEqual(1000);

        await ok('POST', '/v1/cas', {
          name: 'drill-root',
          kind: 'root',
          keySpec: 'EC-256',
          subject: { ...SUBJECT, CN: 'Drill Root' },
        });
        const changed = await ok('PATCH', '/v1/truststores/fleet', { cas: [DEV_ROOT_CA, 'drill-root'] });
        const converged = await waitConverged(distribution, undefined, 120_000);
        // The truststore may have moved on since the PATCH (a CA change of its own): every target holds its current version.
        const truststore = await ok('GET', '/v1/truststores/fleet');
        expect(truststore.version).toBeGreaterThanOrEqual(changed.version);
        for (const target of targetsOf(converged))
          expect(target.delivered).toMatchObject({ version: truststore.version, digest: truststore.digest });
        const distributedAt = Date.now();
        // Signatures started 2 s after the activation (every replica's cache has the new version by then).
        await deliveredSince(Math.max(distributedAt, rotatedAt + 2000), 100);
        windows.push({ name: 'rotation, revocation, distribution', from, to: Date.now(), graceful: true });

        // Each exactly once: one rotation with each step done once; one push of the new version per target.
        expect(await query(appUrl, `SELECT state FROM rotations WHERE subject = $1`, [KEY])).toEqual([
          { state: 'activated' },
        ]);
        const steps = await query<{ step: string; n: number }>(
          appUrl,
          `SELECT data->>'step' AS step, count(*)::int AS n FROM audit_events WHERE type = 'rotation.step' AND subject = $1 AND data->>'outcome' = 'done' GROUP BY 1`,
          [KEY],
        );
        expect(Object.fromEntries(steps.map((s) => [s.step, s.n]))).toEqual({
          'create-key': 1,
          'issue-certificate': 1,
          activate: 1,
        });
        const pushes = await query<{ name: string; pushed: number }>(
          appUrl,
          `SELECT t.name, count(*) FILTER (WHERE NOT d.skipped)::int AS pushed FROM distribution_targets t LEFT JOIN distribution_deliveries d ON d.target_id = t.id AND d.version = $1 GROUP BY t.id, t.name ORDER BY t.name`,
          [truststore.version],
        );
        expect(pushes).toEqual([
          { name: 't0', pushed: 1 },
          { name: 't1', pushed: 1 },
        ]);
        expect(
          new Set(
            all()
              .delivered.filter((d) => d.startedAt >= rotatedAt + 2000)
              .map((d) => d.keyVersion),
          ),
        ).toEqual(new Set([2]));
        measured.operations = {
          rotateToActivatedMs: rotatedAt - from,
          revocationSeenByOcspMs: seenMs,
          distributionRoundMs: distributedAt - rotatedAt,
          failed: failedIn(from, Date.now()).length,
        };
        expect(failedIn(from, Date.now()).length).toBe(0);
      }

      await Promise.all(loads.map((load) => load.stop()));
      await invariants();
      const records = all().records;
      const totals = {
        requests: records.length,
        delivered: all().delivered.length,
        failed: records.length - all().delivered.length,
        loadSeconds: Math.round((records.at(-1)!.at - records[0].startedAt) / 100) / 10,
        clients: 4,
      };
      measured.revokeCallMs = revokeCallMs;
      reportDrill('cluster drill (3 replicas, nginx, Debian PostgreSQL)', {
        ...measured,
        ...totals,
        windows: windows.map((w) => ({ name: w.name, ms: w.to - w.from, graceful: w.graceful })),
      });
    } finally {
      await Promise.all(loads.map((load) => load.stop()));
      agent.destroy();
      for (const replica of replicas) replica?.server.kill('SIGKILL');
      await Promise.all(replicas.map((replica) => replica?.server.exited));
      await nginx?.stop();
      await pg.stop();
      await registry.dispose();
    }
  });
});
