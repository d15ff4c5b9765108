import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { load } from 'js-yaml';
import { PROJECT_ROOT, ServerProcess, tempDir } from '../support/server-process';
import {
  buildServerAndPlugin,
  createKey,
  describeWithNotation,
  expectSuccess,
  notationBundle,
  NotationHome,
  run,
  SignetApi,
  signerToken,
  startSignet,
  stopSignet,
  TlsRegistry,
} from './support/notation-kit';

/**
 * The recipes users copy, run as written: the README's signing walkthrough (key → plugin → sign →
 * bundle → verify) and the shell steps of docs/ci/github-actions.yml and docs/ci/gitlab-ci.yml,
 * extracted from those files and run with bash against a real Signet, the real `notation` and a
 * docker-registry over TLS (the recipes name HTTPS registries, so no --insecure-registry; the test
 * CA reaches Notation through SSL_CERT_FILE). Only what cannot run here is left out: the image
 * build (docker) — the test pushes an image with skopeo and hands its digest over as IMAGE, as the
 * build step does — and the download of Notation, which the recipes skip when `notation` is on
 * PATH.
 */
describeWithNotation(
  'recipes users copy: the README walkthrough and the CI files, run against the local stack',
  (binary) => {
    let server: ServerProcess;
    let api: SignetApi;
    let dir: string;
    let registry: TlsRegistry;
    let plugin: string;

    const ok = expectSuccess;
    /** What every recipe run gets: Notation and Node on PATH, a private Notation configuration, the registry's CA. */
    const baseEnv = (home: NotationHome): NodeJS.ProcessEnv => ({ ...home.env(), SSL_CERT_FILE: registry.caFile });
    const bash = (script: string, env: NodeJS.ProcessEnv, cwd: string) =>
      run('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', script], { env, cwd, timeoutMs: 180_000 });
    const verifyWithBundle = async (home: NotationHome, truststore: string, image: string) => {
      home.installBundle(await notationBundle(api, truststore));
      const verified = await home.notation(['verify', image], { SSL_CERT_FILE: registry.caFile });
      ok(verified);
      const inspected = JSON.parse(
        (await home.notation(['inspect', '-o', 'json', image], { SSL_CERT_FILE: registry.caFile })).stdout,
      ) as {
        Signatures: Array<{ unsignedAttributes: { timestampSignature?: unknown } }>;
      };
      expect(inspected.Signatures).toHaveLength(1);
      expect(inspected.Signatures[0].unsignedAttributes.timestampSignature).toBeDefined();
    };

    beforeAll(async () => {
      plugin = buildServerAndPlugin();
      ({ server, api, dir } = await startSignet('notation-recipes-'));
      registry = await TlsRegistry.start();
    }, 600_000);

    afterAll(async () => {
      await stopSignet(server);
      await registry?.dispose();
    });

    it('README: the signing walkthrough works when pasted into a shell', async () => {
      const readme = fs.readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8');
      const marker = readme.indexOf('<!-- signing walkthrough:');
      expect(marker).toBeGreaterThan(0);
      const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(marker));
      expect(block).not.toBeNull();
      const script = block![1];
      for (const step of [
        'notation plugin install',
        'notation key add',
        'notation sign',
        'format=notation',
        'notation verify',
      ])
        expect(script).toContain(step);

      // Run from a directory laid out like a checkout after `npm run build`, next to a server on embedded defaults.
      const cwd = tempDir('walkthrough-');
      fs.mkdirSync(path.join(cwd, 'dist'));
      fs.copyFileSync(plugin, path.join(cwd, 'dist', 'notation-signet'));
      const home = new NotationHome(binary, 'walkthrough-home-');
      const image = await registry.push('team/walkthrough', 'v1', dir);
      const result = await bash(
        script,
        { ...baseEnv(home), SIGNET_URL: server.url, SIGNET_DATA_DIR: path.join(dir, 'data'), IMAGE: image },
        cwd,
      );
      ok(result);
      expect(result.output).toContain(`Successfully signed ${image}`);
      expect(result.output).toContain(`Successfully verified signature for ${image}`);
      // The token went into a 0600 file, never into Notation's configuration.
      const tokenFile = path.join(cwd, 'signet.token');
      expect(fs.statSync(tokenFile).mode & 0o777).toBe(0o600);
      expect(fs.readFileSync(path.join(home.notationDir, 'signingkeys.json'), 'utf8')).not.toContain(
        fs.readFileSync(tokenFile, 'utf8').trim(),
      );
    });

    describe('CI recipes (token from a secret variable through token_env, image signed with a timestamp)', () => {
      let token: string;
      let pluginUrl: string;
      let pluginSha256: string;
      beforeAll(async () => {
        await createKey(api, 'ci-release', 'EC-384');
        ({ token } = await signerToken(api, dir, 'ci-pipeline', ['ci-release']));
        expect((await api('POST', '/v1/truststores', { name: 'ci', cas: ['signet-dev-root'] })).status).toBe(201);
        pluginUrl = `file://${plugin}`; // curl reads file:// URLs: the "hosted" plugin without a web server
        pluginSha256 = createHash('sha256').update(fs.readFileSync(plugin)).digest('hex');
      });
      /** The settings both recipes ask users to define, pointing at the local stack. */
      const settings = () => ({
        SIGNET_URL: server.url,
        SIGNET_KEY: 'ci-release',
        SIGNET_PLUGIN_URL: pluginUrl,
        SIGNET_PLUGIN_SHA256: pluginSha256,
        SIGNET_TSA_ROOT: 'signet-dev-tsa-root-g1',
        SIGNET_TOKEN: token,
      });

      it('docs/ci/github-actions.yml: its run steps after the build sign the image the build step handed over', async () => {
        const workflow = load(fs.readFileSync(path.join(PROJECT_ROOT, 'docs', 'ci', 'github-actions.yml'), 'utf8')) as {
          jobs: Record<
            string,
            { env: Record<string, string>; steps: Array<{ name?: string; uses?: string; run?: string }> }
          >;
        };
        const job = workflow.jobs['build-and-sign'];
        expect(job.steps.map((s) => s.name ?? s.uses)).toEqual([
          'actions/checkout@v4',
          'Build and push the image',
          'Install Notation',
          'Install notation-signet',
          'Sign the image',
        ]);
        const build = job.steps[1].run!;
        expect(build).toContain('>> "$GITHUB_ENV"'); // the build hands IMAGE (by digest) to the later steps

        // The job's env: literal values as written; ${{ … }} expressions are what the repository settings provide.
        const values: Record<string, string> = {
          ...settings(),
          IMAGE_REPOSITORY: `${registry.host}/team/gha`,
          NOTATION_USERNAME: 'ci',
          NOTATION_PASSWORD: 'unused-by-this-registry',
        };
        const env: Record<string, string> = {};
        for (const [name, value] of Object.entries(job.env)) {
          if (!String(value).includes('${{')) env[name] = String(value);
          else if (values[name] !== undefined) env[name] = values[name];
          else throw new Error(`github-actions.yml: no test value for ${name}`);
        }
        expect(job.env.SIGNET_TOKEN).toBe('${{ secrets.SIGNET_TOKEN }}');

        const home = new NotationHome(binary, 'gha-home-');
        const image = await registry.push('team/gha', 'v1', dir);
        const runnerTemp = tempDir('gha-runner-temp-');
        for (const step of job.steps.slice(2)) {
          const result = await bash(
            step.run!,
            {
              ...baseEnv(home),
              ...env,
              IMAGE: image,
              RUNNER_TEMP: runnerTemp,
              GITHUB_ENV: path.join(runnerTemp, 'github-env'),
            },
            runnerTemp,
          );
          ok(result);
        }
        expect(fs.readFileSync(path.join(home.notationDir, 'signingkeys.json'), 'utf8')).not.toContain(token);
        await verifyWithBundle(home, 'ci', image);
      });

      it("docs/ci/gitlab-ci.yml: the sign job's script signs the image the build job handed over", async () => {
        interface GitlabJob {
          needs?: string[];
          variables?: Record<string, string>;
          script: string[];
          artifacts?: { reports?: { dotenv?: string } };
        }
        const pipeline = load(fs.readFileSync(path.join(PROJECT_ROOT, 'docs', 'ci', 'gitlab-ci.yml'), 'utf8')) as {
          variables: Record<string, string>;
        } & Record<string, GitlabJob>;
        expect(pipeline['build-image'].artifacts?.reports?.dotenv).toBe('image.env');
        expect(pipeline['build-image'].script.join('\n')).toContain('IMAGE=');
        const job = pipeline['sign-image'];
        expect(job.needs).toEqual(['build-image']);

        // GitLab expands $VARIABLE references in `variables`; project settings provide the rest.
        const predefined: Record<string, string> = {
          CI_REGISTRY_USER: 'gitlab-ci-token',
          CI_REGISTRY_PASSWORD: 'unused-by-this-registry',
        };
        const variables: Record<string, string> = {};
        for (const [name, value] of Object.entries({ ...pipeline.variables, ...job.variables } as Record<
          string,
          string
        >)) {
          variables[name] = String(value).replace(/\$([A-Z_][A-Z0-9_]*)/g, (_m, ref: string) => {
            if (predefined[ref] === undefined) throw new Error(`gitlab-ci.yml: no test value for $${ref}`);
            return predefined[ref];
          });
        }

        const home = new NotationHome(binary, 'gitlab-home-');
        const image = await registry.push('team/gitlab', 'v1', dir);
        const buildsDir = tempDir('gitlab-builds-');
        // The runner runs the script's entries in one shell, stopping at the first failure.
        const result = await bash(
          job.script.join('\n'),
          { ...baseEnv(home), ...variables, ...settings(), IMAGE: image },
          buildsDir,
        );
        ok(result);
        expect(result.output).toContain(`Successfully signed ${image}`);
        await verifyWithBundle(home, 'ci', image);
      });
    });
  },
);
