import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { Client } from 'pg';
import { EntityManager } from 'typeorm';

export const DATABASE_URL = Symbol('DATABASE_URL');

type Handler = (payload: string) => void;

/**
 * Cross-replica cache invalidation over PostgreSQL LISTEN/NOTIFY. A change is announced inside the
 * transaction that makes it (`pg_notify` is delivered on commit, never for a rollback); every
 * replica — this one included — receives it. After a lost connection, handlers get '*' (resync:
 * notifications may have been missed), so caches drop everything.
 */
@Injectable()
export class ChangeNotifier implements OnModuleDestroy {
  private readonly logger = new Logger(ChangeNotifier.name);
  private readonly handlers = new Map<string, Handler[]>();
  private client?: Client;
  private connecting?: Promise<void>;
  private closed = false;
  private retryTimer?: NodeJS.Timeout;

  constructor(@Inject(DATABASE_URL) private readonly url: string) {}

  /** Subscribes to a channel (lower-case identifier). Starts listening on first use. */
  on(channel: string, handler: Handler): void {
    if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`invalid channel name ${channel}`);
    const list = this.handlers.get(channel) ?? [];
    list.push(handler);
    this.handlers.set(channel, list);
    if (this.client) void this.client.query(`LISTEN ${channel}`).catch(() => undefined);
    else void this.connect();
  }

  /** Announces a change; call inside the transaction that makes it. */
  async notify(manager: EntityManager, channel: string, payload: string): Promise<void> {
    await manager.query('SELECT pg_notify($1, $2)', [channel, payload]);
  }

  private connect(): Promise<void> {
    if (this.connecting || this.closed) return this.connecting ?? Promise.resolve();
    this.connecting = (async () => {
      const client = new Client({ connectionString: this.url, application_name: 'signet-listener' });
      client.on('notification', (message) => {
        for (const handler of this.handlers.get(message.channel) ?? []) handler(message.payload ?? '');
      });
      client.on('error', () => this.reconnectSoon(client));
      client.on('end', () => this.reconnectSoon(client));
      try {
        await client.connect();
        for (const channel of this.handlers.keys()) await client.query(`LISTEN ${channel}`);
        this.client = client;
      } catch (error) {
        this.logger.warn(`change listener could not connect: ${(error as Error).message}`);
        await client.end().catch(() => undefined);
        this.reconnectSoon();
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  private reconnectSoon(lost?: Client): void {
    if (lost && lost !== this.client) return;
    this.client = undefined;
    if (this.closed || this.retryTimer) return;
    // Whatever was announced while we were away is unknown: every cache resyncs.
    for (const list of this.handlers.values()) for (const handler of list) handler('*');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.connect();
    }, 1000);
    this.retryTimer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.connecting?.catch(() => undefined);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
