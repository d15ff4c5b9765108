import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { dump, load } from 'js-yaml';
import { DEV_ROOT_CA } from '../../src/ca/dev-hierarchy.bootstrap';
import { CrlService } from '../../src/revocation/crl.service';
import {
  apiClient,
  FAST_DISTRIBUTION_ENV,
  targetsOf,
  waitConverged,
  waitFor,
} from '../distribution/distribution-helpers';
import { SUBJECT } from '../rotation/rotation-helpers';
import { TestRegistry } from '../support/registry';
import { freePort, tempDir } from '../support/server-process';
import { startTestApp, TestApp } from '../support/test-app';
import { alertRules, dashboardExpressions, exposedNames, metricNames, PROMETHEUS, RULES_FILE } from './deploy-helpers';

/**
 * The monitoring kit against a live Signet: the in-process app listening on 127.0.0.1, scraped
 * with an auditor token by a real Prometheus server (Debian's `prometheus`, temp config and
 * storage, 1 s scrape and evaluation) that loads deploy/prometheus/alerts.yml. The only change to
 * the rules: every `for:` is shortened to FOR_IN_TEST, so the test waits seconds, not minutes.
 */
const FOR_IN_TEST = '3s';

interface PromAlert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
}

class PrometheusServer {
  readonly output: string[] = [];
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {}

  static async start(config: string, rules: string): Promise<PrometheusServer> {
    const dir = tempDir('prometheus-');
    fs.writeFileSync(path.join(dir, 'rules.yml'), rules);
    fs.writeFileSync(path.join(dir, 'prometheus.yml'), config.replace('RULES_FILE', path.join(dir, 'rules.yml')));
    const port = await freePort();
    const child = spawn(
      PROMETHEUS,
      [
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const server = new PrometheusServer(child, `http://127.0.0.1:${port}`);
    // Never outlive the test process, even when afterAll does not run.
    const kill = () => child.kill('SIGKILL');
    process.once('exit', kill);
    child.once('exit', () => process.removeListener('exit', kill));
    for (const stream of [child.stdout!, child.stderr!])
      stream.setEncoding('utf8').on('data', (chunk: string) => server.output.push(chunk));
    await waitFor(
      'prometheus to be ready',
      async () => child.exitCode === null && (await fetch(`${server.url}/-/ready`)).ok,
      60_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${server.output.join('').slice(-2000)}`);
    });
    return server;
  }

  async api<T>(endpoint: string): Promise<T> {
    const response = await fetch(`${this.url}/api/v1/${endpoint}`);
    const body = (await response.json()) as { status: string; data: T };
    if (body.status !== 'success') throw new Error(`${endpoint}: ${JSON.stringify(body)}`);
    return body.data;
  }

  async alerts(name: string): Promise<PromAlert[]> {
    return (await this.api<{ alerts: PromAlert[] }>('alerts')).alerts.filter((a) => a.labels.alertname === name);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    await exited;
  }
}

describe('monitoring kit against a live Signet (real Prometheus, real docker-registry)', () => {
  let t: TestApp;
  let api: ReturnType<typeof apiClient>;
  let registry: TestRegistry;
  let prometheus: PrometheusServer | undefined;
  let port: number;
  let auditorToken: string;

  beforeAll(async () => {
    registry = await TestRegistry.start({ auth: 'none' });
    t = await startTestApp({
      SIGNET_LOG_LEVEL: 'fatal',
      ...FAST_DISTRIBUTION_ENV,
      SIGNET_DISTRIBUTION_INTERVAL_SECONDS: '1',
      SIGNET_DISTRIBUTION_ATTEMPT_TIMEOUT_MS: '2000',
    });
    api = apiClient(t);
    port = await freePort();
    await t.app.listen(port, '127.0.0.1');
    auditorToken = (await api.ok('POST', '/v1/tokens', { name: 'prometheus', role: 'auditor' }, 201)).json().token;
    await api.ok('POST', '/v1/truststores', { name: 'fleet', cas: [DEV_ROOT_CA] });
    await api.ok('POST', '/v1/regions', { name: 'us' });
    await api.ok(
      'POST',
      '/v1/regions/us/targets',
      {
        name: 'registry',
        kind: 'oci-registry',
        endpoint: registry.url,
        repository: 'signet/truststore',
        truststore: 'fleet',
      },
      201,
    );
    await waitConverged(api.status);
  }, 180_000);

  afterAll(async () => {
    await prometheus?.stop();
    await t?.close();
    await registry?.dispose();
  });

  it('/metrics needs a token unless SIGNET_METRICS_PUBLIC (the scrape config passes one)', async () => {
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(401);
    expect(
      (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${auditorToken}` } }))
        .status,
    ).toBe(200);
  });

  it('every PromQL expression of alerts.yml and the Grafana dashboard names only metrics Signet exposes', async () => {
    const exposition = await (
      await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${auditorToken}` } })
    ).text();
    const exposed = exposedNames(exposition);
    const used = new Map<string, string>();
    for (const rule of alertRules())
      for (const name of metricNames(rule.expr)) used.set(name, `alerts.yml ${rule.alert}`);
    const dashboard = dashboardExpressions();
    expect(dashboard.length).toBeGreaterThan(10);
    for (const expr of dashboard) for (const name of metricNames(expr)) used.set(name, `dashboard: ${expr}`);
    const unknown = [...used].filter(([name]) => !exposed.has(name)).map(([name, where]) => `${name} (${where})`);
    expect(unknown).toEqual([]);
    // The parser found the metrics (a parser that finds nothing would pass the line above).
    expect(used.size).toBeGreaterThanOrEqual(15);
  });

  it('a target pointing at a stopped registry brings SignetDistributionTargetFailing to firing in Prometheus, and it resolves once the registry is back', async () => {
    const rulesDoc = load(fs.readFileSync(RULES_FILE, 'utf8')) as { groups: Array<{ rules: Array<{ for?: string }> }> };
    for (const group of rulesDoc.groups) for (const rule of group.rules) if (rule.for) rule.for = FOR_IN_TEST;
    const tokenFile = path.join(tempDir('prometheus-token-'), 'token');
    fs.writeFileSync(tokenFile, auditorToken, { mode: 0o600 });
    const config = dump({
      global: { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '1s' },
      rule_files: ['RULES_FILE'],
      scrape_configs: [
        {
          job_name: 'signet',
          metrics_path: '/metrics',
          authorization: { type: 'Bearer', credentials_file: tokenFile },
          static_configs: [{ targets: [`127.0.0.1:${port}`] }],
        },
      ],
    });
    prometheus = await PrometheusServer.start(config, dump(rulesDoc));

    // Healthy first: the scrape works, the target state is known to Prometheus, and the alert is quiet.
    await waitFor('prometheus to scrape signet', async () => {
      const { activeTargets } = await prometheus!.api<{ activeTargets: Array<{ health: string; lastError: string }> }>(
        'targets',
      );
      return activeTargets.length === 1 && activeTargets[0].health === 'up';
    });
    await waitFor('the converged target state in prometheus', async () => {
      const result = await prometheus!.api<{ result: unknown[] }>(
        `query?query=${encodeURIComponent('signet_distribution_target_state{region="us",target="registry",state="converged"} == 1')}`,
      );
      return result.result.length === 1;
    });
    // A healthy Signet raises no alert at all (no false positives from live values), over several
    // evaluations. The CRLs are built by a refresh that first runs a minute after start: run it now.
    await t.app.get(CrlService).refreshDue();
    await new Promise((resolve) => setTimeout(resolve, 8000));
    const quiet = (await prometheus.api<{ alerts: PromAlert[] }>('alerts')).alerts;
    expect(quiet.map((a) => `${a.labels.alertname} ${a.state} ${JSON.stringify(a.labels)}`)).toEqual([]);

    // The fault: the registry stops, and a truststore change needs a push to it.
    await registry.stop();
    await api.ok(
      'POST',
      '/v1/cas',
      { name: 'monitoring-root', kind: 'root', keySpec: 'EC-256', subject: { ...SUBJECT, CN: 'Monitoring Root' } },
      201,
    );
    await api.ok('PATCH', '/v1/truststores/fleet', { cas: [DEV_ROOT_CA, 'monitoring-root'] });
    await waitFor(
      'the target to be retrying',
      async () => targetsOf(await api.status()).find((x) => x.region === 'us' && x.state === 'retrying'),
      60_000,
    );

    const firing = await waitFor(
      'SignetDistributionTargetFailing to fire',
      async () => (await prometheus!.alerts('SignetDistributionTargetFailing')).find((a) => a.state === 'firing'),
      60_000,
    );
    expect(firing.labels).toMatchObject({
      alertname: 'SignetDistributionTargetFailing',
      region: 'us',
      target: 'registry',
      state: 'retrying',
      severity: 'warning',
    });

    // The registry back: the target converges and the alert resolves.
    await registry.startProcess();
    await api.ok('POST', '/v1/distribution/sync', undefined, 202);
    await waitConverged(api.status);
    await waitFor(
      'SignetDistributionTargetFailing to resolve',
      async () => (await prometheus!.alerts('SignetDistributionTargetFailing')).length === 0,
      60_000,
    );
  });
});
