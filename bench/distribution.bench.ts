/**
 * Distribution benchmark: the whole application in-process (embedded PostgreSQL, SoftHSM2) pushing
 * one truststore to 100 targets on loopback — six real docker-registry processes (no auth, basic
 * auth with bcrypt htpasswd, bearer tokens from a token issuer double) × 15 repositories = 90
 * reachable targets, plus 10 unreachable ones: 5 ports that refuse connections and 5 servers that
 * accept and never answer. Measured, each as the median of three:
 *   - from a truststore change (PATCH adding or removing a root) to the 90 reachable targets
 *     confirmed holding the new version (read back), with and without the 10 unreachable targets;
 *   - from a revocation to the 90 reachable targets holding the truststore version whose CRL carries it.
 * The end of each run is the latest `delivered_at` among the 90, recorded by the reconciler itself.
 * Distribution settings are the defaults (concurrency 16 per replica, 30 s attempt timeout, 1 s
 * backoff base) — the silent targets hold a push slot for a whole attempt timeout.
 *
 *   npx ts-node --transpile-only bench/distribution.bench.ts
 *
 * Prints a Markdown section and writes .bench-out/distribution.md. Bounded: about two minutes.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { DataSource } from 'typeorm';
import { createApp } from '../src/app.factory';
import { CaCreationService } from '../src/ca/ca-creation.service';
import { DEV_ISSUING_CA, DEV_ROOT_CA } from '../src/ca/dev-hierarchy.bootstrap';
import { loadConfig } from '../src/config/config';
import { RegionsService } from '../src/distribution/regions.service';
import { KeysService } from '../src/keys/keys.service';
import { startPlatform } from '../src/platform';
import { RevocationService } from '../src/revocation/revocation.service';
import { TruststoreService } from '../src/truststore/truststore.service';
import { RegistryAuthMode, startSilentServer, TestRegistry } from '../test/support/registry';
import { freePort } from '../test/support/server-process';

const REGISTRY_MODES: RegistryAuthMode[] = ['none', 'none', 'htpasswd', 'htpasswd', 'token', 'token'];
const REPOSITORIES_PER_REGISTRY = 15;
const RUNS = 3;
const REVOCATIONS = 3;
const POLL_MS = 20;
const RUN_TIMEOUT_MS = 60_000;

interface Measured {
  changeMs: number[];
  revokeMs: number[];
  signetRevokeSeconds: Array<number | null>;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function main(): Promise<void> {
  const started = performance.now();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'signet-bench-distribution-'));
  fs.chmodSync(dataDir, 0o711);
  const config = loadConfig({
    SIGNET_DATA_DIR: dataDir,
    SIGNET_LOG_LEVEL: 'error',
    SIGNET_LOG_REQUESTS: 'false',
    SIGNET_DISTRIBUTION_ALLOW_LOOPBACK: 'true',
  });
  const logger = pino({ level: 'error' });
  const registries = await Promise.all(REGISTRY_MODES.map((auth) => TestRegistry.start({ auth })));
  const silent = await Promise.all(Array.from({ length: 5 }, () => startSilentServer()));
  const refusing = await Promise.all(Array.from({ length: 5 }, () => freePort()));
  const platform = await startPlatform(config, logger);
  const app = await createApp({ config, databaseUrl: platform.databaseUrl, hsm: platform.hsm }, logger);
  const lines: string[] = [];
  try {
    const dataSource = app.get(DataSource);
    const truststores = app.get(TruststoreService);
    const regions = app.get(RegionsService);
    const cas = app.get(CaCreationService);
    const keys = app.get(KeysService);
    // Every measured change adds a root no target has seen, so every layer is new to every repository.
    const extraRoots: string[] = [];
    for (let i = 0; i < 2 * RUNS; i++) {
      extraRoots.push(`bench-root-${i}`);
      await cas.create({
        name: `bench-root-${i}`,
        kind: 'root',
        keySpec: 'EC-256',
        subject: { C: 'US', ST: 'Bench', O: 'Signet', CN: `Bench Root ${i}` },
      });
    }
    for (let i = 0; i < 2 * REVOCATIONS; i++) {
      await keys.create({
        name: `bench-${i}`,
        keySpec: 'EC-256',
        subject: { C: 'US', ST: 'Bench', O: 'Signet', CN: `bench-${i}` },
        issuer: DEV_ISSUING_CA,
      });
    }

    /** Declares a truststore and its targets, waits for the first version everywhere reachable, then measures. */
    const scenario = async (
      name: string,
      withUnreachable: boolean,
      newRoots: string[],
      revokeKeys: string[],
    ): Promise<Measured> => {
      await truststores.create({ name, cas: [DEV_ROOT_CA] });
      await regions.createRegion({ name });
      let n = 0;
      for (const registry of registries) {
        for (let r = 0; r < REPOSITORIES_PER_REGISTRY; r++) {
          await regions.createTarget(name, {
            name: `reach-${n++}`,
            kind: 'oci-registry',
            endpoint: registry.url,
            repository: `${name}/repo-${r}`,
            truststore: name,
            ...(registry.auth === 'none'
              ? {}
              : { credentials: { username: registry.username, password: registry.password } }),
          });
        }
      }
      if (withUnreachable) {
        for (const [i, port] of refusing.entries())
          await regions.createTarget(name, {
            name: `refusing-${i}`,
            kind: 'oci-registry',
            endpoint: `http://127.0.0.1:${port}`,
            repository: 'x/y',
            truststore: name,
          });
        for (const [i, server] of silent.entries())
          await regions.createTarget(name, {
            name: `silent-${i}`,
            kind: 'oci-registry',
            endpoint: server.url,
            repository: 'x/y',
            truststore: name,
          });
      }
      const truststoreId = (await truststores.byName(name)).id;
      /** Waits until every reachable target holds the current version; the time of the last delivery (database clock). */
      const converged = async (): Promise<number> => {
        const deadline = Date.now() + RUN_TIMEOUT_MS;
        for (;;) {
          const [row] = await dataSource.query(
            `SELECT count(*) FILTER (WHERE t.delivered_digest = s.current_digest AND t.state = 'delivered') AS done,
                    count(*) AS total, extract(epoch FROM max(t.delivered_at)) * 1000 AS last
               FROM distribution_targets t JOIN truststores s ON s.id = t.truststore_id
              WHERE s.id = $1 AND t.name LIKE 'reach-%'`,
            [truststoreId],
          );
          if (Number(row.done) === Number(row.total)) return Number(row.last);
          if (Date.now() > deadline)
            throw new Error(`${name}: ${row.done}/${row.total} reachable targets converged after ${RUN_TIMEOUT_MS} ms`);
          await new Promise((r) => setTimeout(r, POLL_MS));
        }
      };
      await converged(); // first version: every repository created and filled (not measured)

      const measured: Measured = { changeMs: [], revokeMs: [], signetRevokeSeconds: [] };
      for (let i = 0; i < newRoots.length; i++) {
        const t0 = Date.now();
        await truststores.update(name, { cas: [DEV_ROOT_CA, ...newRoots.slice(0, i + 1)] });
        measured.changeMs.push((await converged()) - t0);
      }
      for (const key of revokeKeys) {
        const before = (await truststores.byId(truststoreId)).currentVersion;
        const [leaf] = await keys.certificatesOf(key);
        const t0 = Date.now();
        await app.get(RevocationService).revoke(leaf.serial, { reason: 'keyCompromise' });
        const deadline = Date.now() + RUN_TIMEOUT_MS;
        while ((await truststores.byId(truststoreId)).currentVersion === before) {
          if (Date.now() > deadline) throw new Error('no truststore version after the revocation');
          await new Promise((r) => setTimeout(r, POLL_MS));
        }
        measured.revokeMs.push((await converged()) - t0);
        const [version] = await dataSource.query(
          `SELECT extract(epoch FROM converged_at - revoked_at) AS seconds FROM truststore_versions WHERE truststore_id = $1 AND revoked_at IS NOT NULL ORDER BY version DESC LIMIT 1`,
          [truststoreId],
        );
        measured.signetRevokeSeconds.push(
          version?.seconds === null || version?.seconds === undefined ? null : Number(version.seconds),
        );
      }
      // Leave the stage to the next scenario: its targets would otherwise push the next CRL too.
      const names: Array<{ name: string }> = await dataSource.query(
        `SELECT name FROM distribution_targets WHERE truststore_id = $1`,
        [truststoreId],
      );
      for (const { name: target } of names) await regions.deleteTarget(name, target);
      return measured;
    };

    const baseline = await scenario('baseline', false, extraRoots.slice(0, RUNS), ['bench-0', 'bench-1', 'bench-2']);
    const mixed = await scenario('mixed', true, extraRoots.slice(RUNS), ['bench-3', 'bench-4', 'bench-5']);

    const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    const runs = (values: number[]) => values.map(fmt).join(' / ');
    const ratio = median(mixed.changeMs) / median(baseline.changeMs);
    const signet = (values: Array<number | null>) =>
      values.map((v) => (v === null ? 'never (unreachable targets)' : `${v.toFixed(2)} s`)).join(' / ');
    lines.push(
      '## Truststore distribution (`bench/distribution.bench.ts`)',
      '',
      `Whole application in-process (embedded PostgreSQL, SoftHSM2), ${REGISTRY_MODES.length} docker-registry processes on 127.0.0.1 ` +
        `(${REGISTRY_MODES.join(', ')}) × ${REPOSITORIES_PER_REGISTRY} repositories = ${REGISTRY_MODES.length * REPOSITORIES_PER_REGISTRY} reachable targets; ` +
        'the mixed run adds 5 ports refusing connections and 5 servers accepting and never answering (100 targets). ' +
        `Default distribution settings: concurrency ${config.distribution.concurrency}, attempt timeout ${config.distribution.attemptTimeoutMs / 1000} s, backoff ${config.distribution.backoffBaseMs} ms doubling to ${config.distribution.backoffMaxMs / 1000} s. ` +
        'Each measured change adds a root no repository has seen, so every target uploads all seven layers (HEAD, POST, PUT each) and both tags; ' +
        'a revocation changes only the PEM bundle (one new blob). Every attempt reads back first, and the driver reads back after the push. ' +
        `Times run to the latest \`delivered_at\` of the reachable targets; ${RUNS} runs each, median in bold. ` +
        `Machine: ${os.cpus()[0]?.model}, ${os.cpus().length} cores, Node ${process.version}; ${new Date().toISOString().slice(0, 10)}.`,
      '',
      '| measure | 90 reachable only | 90 reachable + 10 unreachable | target |',
      '|---|---:|---:|---|',
      `| truststore change → 90 reachable converged | **${fmt(median(baseline.changeMs))}** (${runs(baseline.changeMs)}) | **${fmt(median(mixed.changeMs))}** (${runs(mixed.changeMs)}) | ≤ 5 s |`,
      `| … with the unreachable targets, relative to without | | **${ratio.toFixed(2)}×** | ≤ 1.1× |`,
      `| revoke → 90 reachable hold the new CRL | **${fmt(median(baseline.revokeMs))}** (${runs(baseline.revokeMs)}) | **${fmt(median(mixed.revokeMs))}** (${runs(mixed.revokeMs)}) | ≤ 5 s |`,
      `| revoke → every target converged, as Signet records it | ${signet(baseline.signetRevokeSeconds)} | ${signet(mixed.signetRevokeSeconds)} | — |`,
      '',
      'The revocation time includes the CRL rebuild, which coalesces revocations for 1 s (src/revocation/crl.service.ts). ' +
        `Run time ${((performance.now() - started) / 1000).toFixed(0)} s.`,
    );
  } finally {
    await app.close();
    await platform.stop();
    await Promise.all([...registries.map((r) => r.dispose()), ...silent.map((s) => s.close())]);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  const text = lines.join('\n');
  console.log(text);
  const out = path.join(__dirname, '..', '.bench-out');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'distribution.md'), `${text}\n`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
