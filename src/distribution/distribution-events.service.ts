import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { Principal } from '../auth/principal';
import { SessionPrincipal, SessionService } from '../auth/session.service';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { ChangeNotifier } from '../database/change-notifier';
import { DistributionStatusService } from './distribution-status.service';
import { DISTRIBUTION_CHANNEL } from './regions.service';

/** Announced by a trigger on distribution_targets (migration DistributionTargetEvents) with the target's id. */
export const TARGET_CHANNEL = 'signet_distribution_target';
/** Changes arriving within this window go out as one read of their targets. */
const COALESCE_MS = 200;
const HEARTBEAT_MS = 15_000;
/** Streams end after this (the browser's EventSource reconnects and authenticates again). */
const MAX_STREAM_MS = 10 * 60_000;
/** Open streams per replica (each holds a socket, not a database connection). */
const MAX_STREAMS = 1000;

interface Stream {
  response: ServerResponse;
  principal: Principal;
  heartbeat: NodeJS.Timeout;
  expiry: NodeJS.Timeout;
}

/**
 * `GET /v1/distribution/events` (text/event-stream): target state changes of the whole fleet, made
 * by any replica. Each replica LISTENs (ChangeNotifier) to the target trigger's channel and the
 * distribution channel (new truststore versions, syncs, target edits), reads the changed targets
 * once per COALESCE_MS for all its streams, and writes:
 *   event: target        data: {"region", "target": TargetStatus (as in GET /v1/distribution)}
 *   event: target        data: {"id", "deleted": true}  (a target gone)
 *   event: distribution  data: {"change": "<truststore name | sync | region/target>"}
 *   event: resync        data: {}  (notifications may have been lost: read GET /v1/distribution again)
 * A stream opened with a console session ends when the session does (checked at each heartbeat).
 */
@Injectable()
export class DistributionEventsService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('DistributionEvents');
  private readonly streams = new Set<Stream>();
  private readonly changed = new Set<string>();
  private flushTimer?: NodeJS.Timeout;
  private eventId = 0;

  constructor(
    private readonly notifier: ChangeNotifier,
    private readonly status: DistributionStatusService,
    private readonly sessions: SessionService,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
  ) {}

  onModuleInit(): void {
    this.notifier.on(TARGET_CHANNEL, (payload) => this.targetChanged(payload));
    this.notifier.on(DISTRIBUTION_CHANNEL, (payload) =>
      payload === '*' ? this.broadcast('resync', {}) : this.broadcast('distribution', { change: payload }),
    );
  }

  onModuleDestroy(): void {
    clearTimeout(this.flushTimer);
    for (const stream of this.streams) this.close(stream);
  }

  /** False when this replica holds MAX_STREAMS streams already. */
  hasRoom(): boolean {
    return this.streams.size < MAX_STREAMS;
  }

  /** Takes over `response` as an event stream (check hasRoom first). */
  open(response: ServerResponse, principal: Principal): void {
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
      // Proxies (nginx) must pass events on as they come.
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    });
    // Under the socket idle timeout (SIGNET_HTTP_REQUEST_TIMEOUT_MS), so an idle stream stays open.
    const every = Math.min(HEARTBEAT_MS, Math.max(1000, Math.floor(this.config.http.requestTimeoutMs / 2)));
    const stream: Stream = {
      response,
      principal,
      heartbeat: setInterval(() => void this.heartbeat(stream), every),
      expiry: setTimeout(() => this.close(stream), MAX_STREAM_MS),
    };
    this.streams.add(stream);
    response.on('close', () => this.forget(stream));
    response.write(`retry: 2000\n\n`);
    this.write(stream, 'ready', {});
  }

  private targetChanged(payload: string): void {
    if (payload === '*') {
      this.broadcast('resync', {});
      return;
    }
    if (this.streams.size === 0) return;
    this.changed.add(payload);
    this.flushTimer ??= setTimeout(() => void this.flush(), COALESCE_MS);
  }

  private async flush(): Promise<void> {
    this.flushTimer = undefined;
    const ids = [...this.changed];
    this.changed.clear();
    try {
      const found = await this.status.targets(ids);
      for (const { region, target } of found) this.broadcast('target', { region, target });
      const present = new Set(found.map((entry) => entry.id));
      for (const id of ids) if (!present.has(id)) this.broadcast('target', { id, deleted: true });
    } catch (error) {
      this.logger.warn(`reading changed targets failed: ${(error as Error).message}`);
      this.broadcast('resync', {});
    }
  }

  private broadcast(event: string, data: unknown): void {
    for (const stream of this.streams) this.write(stream, event, data);
  }

  private write(stream: Stream, event: string, data: unknown): void {
    stream.response.write(`id: ${++this.eventId}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private async heartbeat(stream: Stream): Promise<void> {
    if (
      stream.principal instanceof SessionPrincipal &&
      !(await this.sessions.isOpen(stream.principal.sessionId).catch(() => true))
    ) {
      this.write(stream, 'session-ended', {});
      this.close(stream);
      return;
    }
    stream.response.write(': keep-alive\n\n');
  }

  private close(stream: Stream): void {
    this.forget(stream);
    stream.response.end();
  }

  private forget(stream: Stream): void {
    clearInterval(stream.heartbeat);
    clearTimeout(stream.expiry);
    this.streams.delete(stream);
  }
}
