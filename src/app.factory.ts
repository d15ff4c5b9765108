import { ValidationPipe } from '@nestjs/common';
import * as fs from 'node:fs';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger as PinoLogger } from 'pino';
import { AppModule, RuntimeContext } from './app.module';
import { ocspErrorResponse } from './pki';
import { serverTimeoutOptions, tlsHandshakeTimeout } from './http-timeouts';
import { tlsPolicy } from './tls-policy';
import { HttpExceptionFilter, mapError } from './observability/http-exception.filter';
import { refuseNonJsonBodies } from './observability/body-types';
import { depthLimitedJsonParser } from './observability/json-body';
import { PinoNestLogger } from './observability/logger';
import { recordRoutes } from './observability/route-registry';
import { registerSecurityHeaders } from './observability/security-headers';
import { AuthGuard } from './auth/auth.guard';
import { defaultConsoleDir, registerConsole } from './console/console-assets';
import { installSignFastPath } from './signing/sign-fast-path';
import { SigningService } from './signing/signing.service';
import { MetricsService } from './observability/metrics.service';
import { HealthService } from './observability/health.service';

/**
 * Builds the Nest application on Fastify with Signet's HTTP conventions: one error shape for
 * every failure (Nest's filter also receives Fastify's body-limit and parser errors and unknown
 * routes), request
 * metrics, OpenAPI at /openapi.json and /docs. Used by main.ts and by the e2e tests.
 */
export async function createApp(runtime: RuntimeContext, logger: PinoLogger): Promise<NestFastifyApplication> {
  const { config } = runtime;
  const adapter = new FastifyAdapter({
    // Slow or half-open clients must not tie up the server (header, body and handshake timeouts).
    ...(config.tls
      ? {
          https: {
            cert: fs.readFileSync(config.tls.certFile),
            key: fs.readFileSync(config.tls.keyFile),
            ...tlsPolicy(),
            handshakeTimeout: tlsHandshakeTimeout(config.http),
            ...serverTimeoutOptions(config.http),
          },
        }
      : { http: serverTimeoutOptions(config.http) }),
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: !config.logRequests }),
    // Fastify makes a child logger (bound to the request id) for every request; pino's child()
    // with redaction configured costs ~3 µs. Without request logging nothing logs through it
    // (our errors go through Nest's logger), so requests share the server's logger.
    ...(config.logRequests ? {} : { childLoggerFactory: (parent: FastifyBaseLogger): FastifyBaseLogger => parent }),
    bodyLimit: config.bodyLimitBytes,
    // request.ip (rate limits per client, the address in audit rows) is the peer unless the peer
    // is a proxy named in SIGNET_TRUST_PROXY; then it is the client its X-Forwarded-For names.
    ...(config.trustProxy.length > 0 ? { trustProxy: config.trustProxy } : {}),
    // A socket silent this long mid-request is closed.
    connectionTimeout: config.http.requestTimeoutMs,
    requestTimeout: config.http.requestTimeoutMs,
    keepAliveTimeout: 65_000,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Bad percent-encoding and over-long path parameters are refused by the router itself, before
    // any hook or filter: answer them in the error shape too, and OCSP clients in OCSP's own terms.
    frameworkErrors: (error: Error, request: FastifyRequest, reply: FastifyReply) => {
      if (request.url.startsWith('/ocsp/')) {
        void reply
          .status(200)
          .type('application/ocsp-response')
          .header('cache-control', 'no-store')
          .send(ocspErrorResponse('malformedRequest'));
        return;
      }
      const { status, body } = mapError(error);
      void reply.status(status).type('application/json; charset=utf-8').send(body);
    },
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(runtime), adapter, {
    logger: new PinoNestLogger(logger),
    bufferLogs: false,
    abortOnError: false,
    // Nest's adapter would parse HTML forms too; JSON is registered below, other types are refused.
    bodyParser: false,
  });

  const fastify = app.getHttpAdapter().getInstance();
  recordRoutes(fastify);
  installSignFastPath(fastify, () => ({ guard: app.get(AuthGuard), signing: app.get(SigningService) }));
  app.useBodyParser('application/json', { bodyLimit: config.bodyLimitBytes }, depthLimitedJsonParser(fastify));
  refuseNonJsonBodies(fastify);
  app.useGlobalFilters(new HttpExceptionFilter());
  app.useGlobalPipes(
    new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true, stopAtFirstError: false }),
  );

  registerSecurityHeaders(fastify, { tls: !!config.tls });
  registerConsole(fastify, config.consoleDir ?? defaultConsoleDir());

  // Once the listeners are closed for shutdown (main.ts), every answer closes its connection: a
  // balancer's pooled keep-alive connections end right after a response instead of being cut,
  // idle, under a request it is writing. Not before: while the listener is open, a closed
  // connection makes the balancer open a new one, and one opened as the listener closes is reset.
  const health = app.get(HealthService);
  fastify.addHook(
    'onSend',
    (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (error: null, payload: unknown) => void) => {
      if (health.closingConnections && request.raw.httpVersionMajor < 2) reply.header('connection', 'close');
      done(null, payload);
    },
  );

  const metrics = app.get(MetricsService);
  fastify.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    // The route template, not the raw URL, keeps label cardinality bounded.
    const route = request.routeOptions?.url ?? 'unmatched';
    metrics.observeRequest(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });

  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Signet')
      .setDescription(
        'Key and certificate lifecycle service for container-image signing. Request bodies are application/json (UTF-8), ' +
          'except POST /ocsp/{ca} and POST /tsa; any other content type is 415 UNSUPPORTED_MEDIA_TYPE.',
      )
      .setVersion(process.env.npm_package_version ?? '0.1.0')
      .addBearerAuth()
      // The security console's session (POST /v1/sessions); state-changing calls add X-CSRF-Token.
      .addCookieAuth('signet_session')
      .build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'openapi.json', yamlDocumentUrl: 'openapi.yaml' });

  await app.init();
  return app;
}
