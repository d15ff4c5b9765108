import 'reflect-metadata';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createApp } from './app.factory';
import { ConfigError, loadConfig, SignetConfig } from './config/config';
import { createLogger, scrubText } from './observability/logger';
import { HealthService } from './observability/health.service';
import { Platform, startPlatform } from './platform';
import { startPublicListener, stopServer } from './public-listener';
import type { Server } from 'node:http';
import { setFlagsFromString } from 'node:v8';

// Old space may grow to twice what survived the last full GC before the next one. Measured with
// the signing bench on 2 cores / 24 GiB (three interleaved runs each): V8's own factor (up to 4×
// with plenty of memory) let garbage promoted under load take RSS to 288-353 MB; a 256 MB cap on
// the heap instead ran a full GC every ~1.4 s, p99 at 32 connections 21-26 ms; this factor: RSS
// ~235 MB, p99 ~15 ms. V8 reads the flag at every GC, so setting it here, at start, applies.
setFlagsFromString('--heap-growing-percent=100');

/**
 * `signet` server entry point. Exit codes: 0 after a graceful stop, 2 for bad configuration
 * (one line naming the variable), 1 for any other start failure.
 */
async function main(): Promise<void> {
  let config: SignetConfig;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`signet: configuration error: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel);

  let platform: Platform | undefined;
  let app: NestFastifyApplication | undefined;
  let publicListener: Server | undefined;
  let stoppingSince = 0;
  const shutdown = async (signal: string) => {
    if (stoppingSince) {
      // The same stop request delivered twice (terminal Ctrl-C to the process group, a supervisor
      // signalling every process) is not an impatient second request.
      if (Date.now() - stoppingSince < 2000) return;
      logger.warn(`second ${signal}: exiting now`);
      process.exit(1);
    }
    stoppingSince = Date.now();
    const drainMs = app ? config.drainDelayMs : 0;
    logger.info(
      `${signal} received: draining for ${drainMs} ms (/readyz 503), then closing the listeners and the connections, then stopping`,
    );
    const force = setTimeout(
      () => {
        logger.error(`graceful stop took longer than ${config.shutdownTimeoutMs} ms; exiting`);
        process.exit(1);
      },
      2 * drainMs + config.shutdownTimeoutMs + 35_000,
    );
    force.unref();
    try {
      // 1. Drain: still serving everything, keep-alive as usual, but /readyz says 503 so Kubernetes
      //    and balancers that watch it stop sending new connections here.
      const health = app?.get(HealthService);
      health?.startDraining();
      if (drainMs > 0) await new Promise((resolve) => setTimeout(resolve, drainMs));
      // 2. Stop accepting, then close the connections: the listeners close at once (a balancer's new
      //    connection is refused, safe for it to retry elsewhere since nothing was sent); every answer
      //    from now on says `Connection: close`; the connections clients leave idle are closed after
      //    another drain delay (a balancer's keep-alive timeout must be shorter), and the requests in
      //    flight finish, with the HSM and database still up, within SIGNET_SHUTDOWN_TIMEOUT_MS.
      health?.startClosingConnections();
      const grace = config.shutdownTimeoutMs;
      await Promise.all([
        stopServer(publicListener, drainMs, grace),
        stopServer(app?.getHttpServer() as Server | undefined, drainMs, grace),
      ]);
      // 3. Nest's module destroy hooks (HSM sessions closed, database pool closed); the embedded
      //    PostgreSQL goes last.
      await app?.close();
      await platform?.stop();
      logger.info('stopped');
      logger.flush();
      process.exitCode = 0;
      setTimeout(() => process.exit(0), 50).unref();
    } catch (error) {
      logger.error(`error while stopping: ${scrubText(String(error))}`);
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  try {
    platform = await startPlatform(config, logger);
    app = await createApp({ config, databaseUrl: platform.databaseUrl, hsm: platform.hsm }, logger);
    await app.listen({ port: config.port, host: config.host });
    if (config.tls && config.publicPort) {
      publicListener = await startPublicListener(
        app.getHttpAdapter().getInstance(),
        config.publicPort,
        config.host,
        config.http,
      );
      logger.info(`plain-HTTP listener for /pki, /ocsp and /tsa on ${config.host}:${config.publicPort}`);
    }
    logger.info(
      { port: config.port, tls: !!config.tls, publicUrl: config.publicUrl },
      `Signet listening on ${config.host}:${config.port}${config.tls ? ' (TLS)' : ''}`,
    );
  } catch (error) {
    if (error instanceof ConfigError) {
      // Found while starting (e.g. a privileged database role): same one line and exit code as any bad setting.
      logger.flush();
      process.stderr.write(`signet: configuration error: ${scrubText(error.message)}\n`);
      await app?.close().catch(() => undefined);
      await platform?.stop().catch(() => undefined);
      process.exit(2);
    }
    logger.fatal(`start failed: ${scrubText(error instanceof Error ? error.message : String(error))}`);
    logger.flush();
    process.stderr.write(
      `signet: start failed: ${scrubText(error instanceof Error ? error.message : String(error))}\n`,
    );
    await app?.close().catch(() => undefined);
    await platform?.stop().catch(() => undefined);
    process.exit(1);
  }
}

void main();
