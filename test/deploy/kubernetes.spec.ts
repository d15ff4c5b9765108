import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadAll } from 'js-yaml';
import { ConfigMap, Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type { IContainer, IPodSpec } from 'kubernetes-models/v1';
import { configVariableNames } from '../../src/config/config';
import { PROJECT_ROOT } from '../support/server-process';

/**
 * deploy/kubernetes: every manifest validates against the Kubernetes API schemas of the
 * `kubernetes-models` package (4.x: Kubernetes 1.33 API, e.g. pod-level resources and
 * lifecycle.stopSignal; its README badge still says 1.27), the kustomization lists every file,
 * and every environment variable set is one Signet reads. The schemas accept unknown fields (the
 * Kubernetes OpenAPI does not forbid them), so a few checks below catch the mistakes they let through.
 */
const DIR = path.join(PROJECT_ROOT, 'deploy', 'kubernetes');
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

/** Read outside src/config (before Node starts, or by the image / start script). */
const PROCESS_VARIABLES: Record<string, string> = {
  UV_THREADPOOL_SIZE: 'bin/signet',
  NODE_OPTIONS: 'Dockerfile',
};
/**
 * Read by a change not on this branch yet (none now: SIGNET_MIGRATION_DATABASE_URL_FILE, the
 * owner role for migrations, is read by src/config). Remove a name once src/config reads it.
 */
const PENDING_VARIABLES: string[] = [];

interface Manifest {
  file: string;
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}

const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
const manifests: Manifest[] = files.flatMap((file) =>
  (loadAll(fs.readFileSync(path.join(DIR, file), 'utf8')) as Manifest[]).map((doc) => ({ ...doc, file })),
);
const kustomization = loadAll(fs.readFileSync(path.join(DIR, 'kustomization.yaml'), 'utf8'))[0] as {
  resources: string[];
  namespace: string;
};
const of = <T>(kind: string, name?: string) =>
  manifests.filter((m) => m.kind === kind && (!name || m.metadata.name === name)) as unknown as Array<T & Manifest>;
const podSpecs = (): Array<{ owner: string; spec: IPodSpec }> => [
  ...of<{ spec: { template: { spec: IPodSpec } } }>('Deployment').map((d) => ({
    owner: `Deployment ${d.metadata.name}`,
    spec: d.spec.template.spec,
  })),
  ...of<{ spec: { template: { spec: IPodSpec } } }>('Job').map((j) => ({
    owner: `Job ${j.metadata.name}`,
    spec: j.spec.template.spec,
  })),
];
const env = (c: IContainer) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));

describe('Kubernetes manifests (deploy/kubernetes)', () => {
  it('kustomization.yaml lists every manifest file, and only those', () => {
    expect([...kustomization.resources].sort()).toEqual([...files].sort());
  });

  it('every manifest validates against the Kubernetes API schema of its kind', () => {
    expect(manifests.length).toBeGreaterThanOrEqual(9);
    for (const manifest of manifests) {
      const { file, ...doc } = manifest;
      const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
      expect(`${file}: ${doc.apiVersion}/${doc.kind}`).toBe(
        Model ? `${file}: ${doc.apiVersion}/${doc.kind}` : 'a kind this test knows',
      );
      expect(() => new Model(doc as never).validate()).not.toThrow();
    }
  });

  it('the schema validation rejects a broken manifest (the check above can fail)', () => {
    const deployment = of<{ spec: { replicas: unknown } }>('Deployment')[0];
    const { file: _file, ...doc } = deployment;
    expect(() => new Deployment({ ...doc, spec: { ...doc.spec, replicas: 'three' } } as never).validate()).toThrow(
      /replicas/,
    );
  });

  it('configVariableNames() lists what loadConfig reads, defaults included, and not the refused PIN variables', () => {
    const names = configVariableNames();
    expect(names).toEqual(
      expect.arrayContaining([
        'SIGNET_PORT',
        'DATABASE_URL',
        'DATABASE_URL_FILE',
        'SIGNET_PKCS11_PIN_FILE',
        'SIGNET_TSA_POLICY_OID',
        'SIGNET_DISTRIBUTION_LEASE_SECONDS',
      ]),
    );
    expect(names).not.toContain('SIGNET_PKCS11_PIN');
    expect(names.every((name) => /^(SIGNET_|DATABASE_URL)/.test(name))).toBe(true);
  });

  it('sets only environment variables Signet reads (config, or the process before Node starts)', () => {
    const read = new Set([...configVariableNames(), ...Object.keys(PROCESS_VARIABLES), ...PENDING_VARIABLES]);
    for (const [name, where] of Object.entries(PROCESS_VARIABLES))
      expect(fs.readFileSync(path.join(PROJECT_ROOT, where), 'utf8')).toContain(name);
    for (const name of PENDING_VARIABLES) expect(configVariableNames()).not.toContain(name);
    const set = new Set<string>();
    for (const { spec } of podSpecs()) {
      for (const container of spec.containers) {
        for (const e of container.env ?? []) set.add(e.name);
        for (const from of container.envFrom ?? []) {
          const map = of<Manifest>('ConfigMap', from.configMapRef?.name)[0];
          expect(map).toBeDefined();
          for (const key of Object.keys(map.data ?? {})) set.add(key);
        }
      }
    }
    expect(set.size).toBeGreaterThan(10);
    expect([...set].filter((name) => !read.has(name))).toEqual([]);
  });

  it('the Deployment: replicas behind a PodDisruptionBudget, probes on /healthz and /readyz, no migrations, HSM and database from Secrets', () => {
    const [deployment] = of<{
      spec: {
        replicas: number;
        selector: { matchLabels: Record<string, string> };
        template: { metadata: { labels: Record<string, string> }; spec: IPodSpec };
      };
    }>('Deployment', 'signet');
    expect(deployment.spec.replicas).toBeGreaterThanOrEqual(2);
    const labels = deployment.spec.template.metadata.labels;
    expect(labels).toMatchObject(deployment.spec.selector.matchLabels);
    const [pdb] = of<{ spec: { selector: { matchLabels: Record<string, string> } } }>('PodDisruptionBudget');
    expect(labels).toMatchObject(pdb.spec.selector.matchLabels);
    const [container] = deployment.spec.template.spec.containers;
    expect(container.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(container.readinessProbe?.httpGet?.path).toBe('/readyz');
    const vars = env(container);
    expect(vars.SIGNET_MIGRATIONS_RUN).toBe('false');
    expect(vars.SIGNET_DEV_BOOTSTRAP).toBe('false');
    expect(container.resources?.requests).toBeDefined();
    expect(container.resources?.limits).toBeDefined();
    const mountOf = (file: string) =>
      container.volumeMounts!.find((m) => file === m.mountPath || file.startsWith(m.mountPath + '/'));
    const volumeOf = (file: string) =>
      deployment.spec.template.spec.volumes!.find((v) => v.name === mountOf(file)?.name);
    expect(volumeOf(vars.SIGNET_PKCS11_MODULE!)?.secret?.items?.map((i) => i.path)).toContain(
      path.basename(vars.SIGNET_PKCS11_MODULE!),
    );
    expect(volumeOf(vars.SIGNET_PKCS11_PIN_FILE!)?.secret?.items?.map((i) => i.path)).toContain(
      path.basename(vars.SIGNET_PKCS11_PIN_FILE!),
    );
    expect(volumeOf(vars.DATABASE_URL_FILE!)?.secret?.secretName).toBe('signet-database');
    expect(volumeOf(vars.SIGNET_DATA_DIR!)?.emptyDir).toBeDefined();
    // The readiness probe reaches the API listener, which has TLS on when the TLS files are set.
    expect(container.readinessProbe?.httpGet?.scheme === 'HTTPS').toBe(vars.SIGNET_TLS_CERT_FILE !== undefined);
  });

  it('the migration Job runs `signet migrate` with migrations on, without the HSM', () => {
    const [job] = of<{ spec: { template: { spec: IPodSpec } } }>('Job', 'signet-migrate');
    const [container] = job.spec.template.spec.containers;
    expect(container.command).toEqual(['node', 'dist/src/cli/main.js', 'migrate']);
    expect(fs.existsSync(path.join(PROJECT_ROOT, 'src', 'cli', 'main.ts'))).toBe(true);
    const vars = env(container);
    expect(vars.SIGNET_MIGRATIONS_RUN).toBe('true');
    expect(vars.DATABASE_URL_FILE).toBeDefined();
    expect(Object.keys(vars).filter((name) => name.startsWith('SIGNET_PKCS11'))).toEqual([]);
  });

  it('pods run as non-root on a read-only root filesystem; every mount has a volume; Services and probes name declared ports', () => {
    for (const { owner, spec } of podSpecs()) {
      expect(`${owner} runAsNonRoot=${spec.securityContext?.runAsNonRoot}`).toBe(`${owner} runAsNonRoot=true`);
      const volumes = new Set((spec.volumes ?? []).map((v) => v.name));
      for (const container of spec.containers) {
        expect(container.securityContext).toMatchObject({
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'] },
        });
        for (const mount of container.volumeMounts ?? []) expect(volumes).toContain(mount.name);
        // Writable places exist: /tmp for every container.
        expect((container.volumeMounts ?? []).map((m) => m.mountPath)).toContain('/tmp');
      }
    }
    const [deployment] = of<{ spec: { template: { metadata: { labels: Record<string, string> }; spec: IPodSpec } } }>(
      'Deployment',
      'signet',
    );
    const ports = new Map(
      (deployment.spec.template.spec.containers[0].ports ?? []).map((p) => [p.name, p.containerPort]),
    );
    const vars = env(deployment.spec.template.spec.containers[0]);
    expect(ports.get('api')).toBe(Number(vars.SIGNET_PORT));
    expect(ports.get('public')).toBe(Number(vars.SIGNET_PUBLIC_HTTP_PORT));
    for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe'] as const)
      expect(ports.has(String(deployment.spec.template.spec.containers[0][probe]?.httpGet?.port))).toBe(true);
    const services = of<{ spec: { selector: Record<string, string>; ports: Array<{ targetPort: string }> } }>(
      'Service',
    );
    expect(services.map((s) => s.metadata.name).sort()).toEqual(['signet-api', 'signet-public']);
    for (const service of services) {
      expect(deployment.spec.template.metadata.labels).toMatchObject(service.spec.selector);
      for (const port of service.spec.ports) expect(ports.has(port.targetPort)).toBe(true);
    }
    // The public Service is the plain-HTTP listener (/pki, /ocsp, /tsa), open to anyone by the NetworkPolicy.
    expect(services.find((s) => s.metadata.name === 'signet-public')!.spec.ports[0].targetPort).toBe('public');
    const [policy] = of<{ spec: { ingress: Array<{ from?: unknown[]; ports: Array<{ port: number }> }> } }>(
      'NetworkPolicy',
    );
    expect(policy.spec.ingress.find((rule) => !rule.from)?.ports.map((p) => p.port)).toEqual([ports.get('public')]);
  });
});
