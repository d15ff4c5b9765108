import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTestDatabase, query, TestDatabase } from '../support/database';
import {
  ensureBuilt,
  freePort,
  postgresProcessesFor,
  PROJECT_ROOT,
  ServerProcess,
  tempDir,
} from '../support/server-process';

/**
 * The real server binary (node dist/src/main.js) started the way the README's first command
 * starts it: embedded PostgreSQL and a SoftHSM2 token under a fresh data dir.
 */
describe('Signet process lifecycle', () => {
  beforeAll(() => ensureBuilt());

  async function start(dataDir: string, env: Record<string, string> = {}): Promise<ServerProcess> {
    const server = new ServerProcess(await freePort(), { SIGNET_DATA_DIR: dataDir, ...env });
    await server.waitReady();
    return server;
  }

  it('starts on embedded defaults, is ready, exits 0 on SIGTERM without leaving PostgreSQL behind, and restarts on the same data', async () => {
    const dataDir = tempDir('lifecycle-');
    const first = await start(dataDir);
    const ready = await fetch(`${first.url}/readyz`);
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as { checks: Record<string, { ok: boolean }> };
    expect(body.checks.database.ok).toBe(true);
    expect(first.text()).toContain('initialising embedded PostgreSQL cluster');
    expect(first.text()).toMatch(/applied \d+ migration\(s\)/);
    expect(postgresProcessesFor(dataDir).length).toBeGreaterThan(0);

    first.kill('SIGTERM');
    expect(await first.exited).toEqual({ code: 0, signal: null });
    expect(postgresProcessesFor(dataDir)).toEqual([]);

    const second = await start(dataDir);
    // Same cluster and schema: nothing initialised or migrated again.
    expect(second.text()).not.toContain('initialising embedded PostgreSQL cluster');
    expect(second.text()).not.toMatch(/applied \d+ migration\(s\)/);
    second.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
    expect(postgresProcessesFor(dataDir)).toEqual([]);
  });

  it('recovers after a SIGKILL: the orphaned PostgreSQL is found and the next start comes up on the same data', async () => {
    const dataDir = tempDir('sigkill-');
    const first = await start(dataDir);
    first.kill('SIGKILL');
    await first.exited;
    // The server Signet started outlives it, holding the data dir.
    expect(postgresProcessesFor(dataDir).length).toBeGreaterThan(0);

    const second = await start(dataDir);
    expect(second.text()).toContain('orphaned embedded PostgreSQL');
    expect(second.text()).not.toContain('initialising embedded PostgreSQL cluster');
    second.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
    expect(postgresProcessesFor(dataDir)).toEqual([]);
  });

  it('removes a stale postmaster.pid left by a server that is gone', async () => {
    const dataDir = tempDir('stalepid-');
    const first = await start(dataDir);
    first.kill('SIGTERM');
    await first.exited;
    const pidFile = path.join(dataDir, 'postgres', 'data', 'postmaster.pid');
    // A pid that cannot be a live postgres (pid_max is far below this).
    fs.writeFileSync(pidFile, `999999999\n${path.join(dataDir, 'postgres', 'data')}\n`);
    const second = await start(dataDir);
    expect(second.text()).toContain('removing stale postmaster.pid');
    second.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
  });

  it.each([
    ['SIGNET_PORT', 'eighty', {}],
    ['SIGNET_PORT', '99999', {}],
    ['DATABASE_URL', 'not-a-url', {}],
    ['SIGNET_ROTATION_MIN_INTERVAL_HOURS', 'daily', {}],
    ['SIGNET_PKCS11_PIN_FILE', '/nonexistent/user.pin', { SIGNET_PKCS11_MODULE: '/usr/lib/softhsm/libsofthsm2.so' }],
  ])(
    'exits non-zero with one line naming %s when it is malformed or unreadable (%s)',
    async (variable, value, extra) => {
      const server = new ServerProcess(await freePort(), {
        SIGNET_DATA_DIR: tempDir('badcfg-'),
        [variable]: value,
        ...extra,
      });
      const { code } = await server.exited;
      expect(code).not.toBe(0);
      const lines = server.text().trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^signet: configuration error: ${variable}: `));
    },
  );

  describe('scripts/start.js (npm start) caps the V8 heap of the server it starts', () => {
    const startScript = path.join(PROJECT_ROOT, 'scripts', 'start.js');

    /** The command line of the one child process of `pid` (the server start.js spawned). */
    function childCommandLine(pid: number): string[] {
      const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      expect(children).toHaveLength(1);
      return fs.readFileSync(`/proc/${children[0]}/cmdline`, 'utf8').split('\0').filter(Boolean);
    }

    it('passes --max-old-space-size from SIGNET_MAX_HEAP_MB to the server, which comes up and stops with it', async () => {
      const server = new ServerProcess(
        await freePort(),
        { SIGNET_DATA_DIR: tempDir('heapcap-'), SIGNET_MAX_HEAP_MB: '200' },
        startScript,
        ['--no-build'],
      );
      await server.waitReady();
      const commandLine = childCommandLine(server.pid);
      expect(commandLine).toContain('--max-old-space-size=200');
      expect(commandLine[commandLine.length - 1]).toBe(path.join(PROJECT_ROOT, 'dist', 'src', 'main.js'));
      server.kill('SIGTERM');
      expect(await server.exited).toEqual({ code: 0, signal: null });
    });

    it.each(['lots', '32', '-1'])(
      'refuses SIGNET_MAX_HEAP_MB=%s with exit 2 and one line naming it, starting nothing',
      async (value) => {
        const dataDir = tempDir('heapcap-bad-');
        const server = new ServerProcess(
          await freePort(),
          { SIGNET_DATA_DIR: dataDir, SIGNET_MAX_HEAP_MB: value },
          startScript,
          ['--no-build'],
        );
        expect(await server.exited).toEqual({ code: 2, signal: null });
        const lines = server.text().trim().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/^signet: configuration error: SIGNET_MAX_HEAP_MB: /);
        expect(fs.readdirSync(dataDir)).toEqual([]);
      },
    );
  });

  describe('two processes started at once on one fresh database', () => {
    let database: TestDatabase;
    beforeAll(async () => {
      database = await createTestDatabase({ migrate: false });
    });
    afterAll(() => database.drop());

    it('apply migrations and first-start bootstrap exactly once', async () => {
      const dataDir = tempDir('replicas-');
      const env = {
        SIGNET_DATA_DIR: dataDir,
        DATABASE_URL: database.url,
        SIGNET_MIGRATION_DATABASE_URL: database.ownerUrl,
        SIGNET_DEV_BOOTSTRAP: 'true',
      };
      const [a, b] = [new ServerProcess(await freePort(), env), new ServerProcess(await freePort(), env)];
      await Promise.all([a.waitReady(), b.waitReady()]);

      const migrated = [a, b].filter((s) => /applied \d+ migration\(s\)/.test(s.text()));
      expect(migrated).toHaveLength(1);
      const migrations = await query<{ name: string; count: string }>(
        database.url,
        'SELECT name, count(*) FROM typeorm_migrations GROUP BY name',
      );
      expect(migrations.length).toBeGreaterThan(0);
      expect(migrations.every((m) => m.count === '1')).toBe(true);

      const steps = await query<{ name: string }>(database.url, 'SELECT name FROM bootstrap_steps');
      const bootstrapLines = [a, b].map((s) => (s.text().match(/first-start bootstrap: /g) ?? []).length);
      expect(bootstrapLines.reduce((x, y) => x + y, 0)).toBe(steps.length);
      expect(new Set(steps.map((s) => s.name)).size).toBe(steps.length);

      a.kill('SIGTERM');
      b.kill('SIGTERM');
      expect((await a.exited).code).toBe(0);
      expect((await b.exited).code).toBe(0);
    });
  });
});
