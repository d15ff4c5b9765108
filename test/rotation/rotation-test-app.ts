import 'reflect-metadata';
import { Global, Logger, Module, ValidationPipe } from '@nestjs/common';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { AppModule } from '../../src/app.module';
import { ADMIN_TOKEN_FILE } from '../../src/auth/admin-token.bootstrap';
import { DISTRIBUTION_GATE, DistributionGate, RootAcknowledgement } from '../../src/common/distribution-gate';
import { loadConfig, SignetConfig } from '../../src/config/config';
import { HttpExceptionFilter } from '../../src/observability/http-exception.filter';
import { HSM_OPTIONS } from '../../src/hsm/hsm.module';
import type { HsmOptions } from '../../src/hsm/hsm-options';
import type { Pkcs11FaultInjector } from '../../src/hsm/pkcs11-fault-injector';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { createLogger, PinoNestLogger } from '../../src/observability/logger';
import { ROTATION_CLOCK, RotationClock } from '../../src/rotation/rotation-clock';
import { createTestDatabase, TestDatabase } from '../support/database';
import { tempDir } from '../support/server-process';
import { createTestToken, TestToken } from '../support/softhsm';

/** The rotation clock under the test's control: it moves only when the test moves it. */
export class TestClock implements RotationClock {
  constructor(private current: Date) {}

  now(): Date {
    return new Date(this.current.getTime());
  }

  set(at: Date): void {
    this.current = new Date(at.getTime());
  }

  advance(ms: number): Date {
    this.current = new Date(this.current.getTime() + ms);
    return this.now();
  }
}

/**
 * The distribution module's gate as a double: a required target ("eu/harbor") acknowledges a root
 * only once the test says so.
 */
export class GateDouble implements DistributionGate {
  readonly acknowledged = new Set<string>();
  readonly asked: string[] = [];
  pendingTargets = ['eu/harbor'];

  async requiredTargetsHaveRoot(rootSha256: string): Promise<RootAcknowledgement> {
    this.asked.push(rootSha256);
    const pending = this.acknowledged.has(rootSha256) ? [] : this.pendingTargets;
    return { acknowledged: pending.length === 0, pending: [...pending] };
  }
}

export interface RotationTestApp {
  app: NestFastifyApplication;
  config: SignetConfig;
  database: TestDatabase;
  token: TestToken;
  clock: TestClock;
  gate?: GateDouble;
  adminToken: string;
  logs: string[];
  close(): Promise<void>;
}

/**
 * The whole application (AppModule, as main.ts builds it) on a fresh database and SoftHSM2 token,
 * with the rotation clock replaced by a TestClock and, optionally, a distribution gate double
 * provided the way the distribution module will provide the real one (a global provider).
 * The scheduler's own timer is off (SIGNET_ROTATION_TICK_SECONDS=0): the test ticks.
 * With `hsmFaults`, the key store is built with that PKCS#11 fault-injection seam in front of
 * pkcs11js (a double: for faults SoftHSM2 cannot produce, and for holding calls during a drill).
 */
export async function startRotationTestApp(
  options: {
    clock?: TestClock;
    gate?: GateDouble;
    env?: Record<string, string>;
    hsmFaults?: Pkcs11FaultInjector;
    hsm?: Partial<HsmOptions>;
  } = {},
): Promise<RotationTestApp> {
  const database = await createTestDatabase();
  const token = await createTestToken('rotation');
  const config = loadConfig({
    DATABASE_URL: database.url,
    SIGNET_DATA_DIR: tempDir('rotation-data-'),
    SIGNET_PUBLIC_URL: 'http://signet.test:8080',
    SIGNET_DEV_BOOTSTRAP: 'true',
    SIGNET_LOG_LEVEL: 'info',
    SIGNET_LOG_REQUESTS: 'false',
    SIGNET_ROTATION_TICK_SECONDS: '0',
    SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
    ...options.env,
  });
  const clock = options.clock ?? new TestClock(new Date());
  const logs: string[] = [];
  const sink = new Writable({ write: (chunk, _e, done) => (logs.push(chunk.toString()), done()) });
  const logger = createLogger(config.logLevel, sink);

  const gateProviders = options.gate ? [{ provide: DISTRIBUTION_GATE, useValue: options.gate }] : [];
  @Global()
  @Module({ providers: gateProviders, exports: gateProviders.map((p) => p.provide) })
  class GateDoubleModule {}

  const builder = Test.createTestingModule({
    imports: [
      AppModule.forRoot({
        config,
        databaseUrl: database.url,
        hsm: {
          modulePath: token.modulePath,
          tokenLabel: token.tokenLabel,
          pin: token.pin,
          poolSize: 4,
          ...options.hsm,
        },
      }),
      GateDoubleModule,
    ],
  })
    .overrideProvider(ROTATION_CLOCK)
    .useValue(clock);
  // When the distribution module is in the app, its gate is replaced by the double as well.
  if (options.gate) builder.overrideProvider(DISTRIBUTION_GATE).useValue(options.gate);
  const faults = options.hsmFaults;
  if (faults) {
    builder.overrideProvider(Pkcs11KeyStore).useFactory({
      factory: async (hsm: HsmOptions) => {
        const store = new Pkcs11KeyStore(hsm, { logger: new Logger('Hsm'), faults });
        await store.open();
        return store;
      },
      inject: [HSM_OPTIONS],
    });
  }
  const moduleRef = await builder.compile();
  const app = moduleRef.createNestApplication<NestFastifyApplication>(
    new FastifyAdapter({ bodyLimit: config.bodyLimitBytes }),
    { logger: new PinoNestLogger(logger) },
  );
  app.useGlobalFilters(new HttpExceptionFilter());
  app.useGlobalPipes(
    new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true, stopAtFirstError: false }),
  );
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  const adminToken = fs.readFileSync(path.join(config.dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();
  return {
    app,
    config,
    database,
    token,
    clock,
    gate: options.gate,
    adminToken,
    logs,
    close: async () => {
      await app.close();
      await database.drop();
    },
  };
}
