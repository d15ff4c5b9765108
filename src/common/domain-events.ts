import { Injectable } from '@nestjs/common';

/**
 * What one part of Signet announces and others react to: event name → payload. This platform file
 * names no domain type: each publishing folder adds its events by declaration merging, next to the
 * code that publishes them:
 *
 *   declare module '../common/domain-events' {
 *     interface DomainEvents { 'certificate.revoked': { certificate: CertificateEntity } }
 *   }
 *
 * Every subscription is made in one place, src/domain-events.wiring.ts.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface DomainEvents {}

export type DomainEventName = keyof DomainEvents;
export type DomainEventHandler<K extends DomainEventName> = (payload: DomainEvents[K]) => Promise<void> | void;

/**
 * The in-process bus. Subscribers run one after another in the order they subscribed, each awaited
 * before the next starts, so a publisher inside a transaction has every subscriber's work (done with
 * the payload's EntityManager) in that transaction when `publish` resolves. Nothing crosses
 * replicas here: subscribers that must reach other replicas NOTIFY in the transaction.
 */
@Injectable()
export class DomainEventBus {
  private readonly handlers = new Map<DomainEventName, Array<DomainEventHandler<never>>>();

  subscribe<K extends DomainEventName>(name: K, handler: DomainEventHandler<K>): void {
    const list = this.handlers.get(name) ?? [];
    list.push(handler as DomainEventHandler<never>);
    this.handlers.set(name, list);
  }

  hasSubscribers(name: DomainEventName): boolean {
    return (this.handlers.get(name)?.length ?? 0) > 0;
  }

  /** The first failing subscriber stops the rest and rejects (inside a transaction: it rolls back). */
  async publish<K extends DomainEventName>(name: K, payload: DomainEvents[K]): Promise<void> {
    for (const handler of this.subscribers(name)) await handler(payload);
  }

  /**
   * A failing subscriber is handed to `onFailure` and the rest still run: for work after a commit,
   * where one observer's failure must neither undo nor hide the others'.
   */
  async publishEach<K extends DomainEventName>(
    name: K,
    payload: DomainEvents[K],
    onFailure: (error: unknown) => void,
  ): Promise<void> {
    for (const handler of this.subscribers(name)) {
      try {
        await handler(payload);
      } catch (error) {
        onFailure(error);
      }
    }
  }

  private subscribers<K extends DomainEventName>(name: K): Array<DomainEventHandler<K>> {
    // A copy: a subscriber added while an event is delivered takes effect from the next event.
    return [...(this.handlers.get(name) ?? [])] as Array<DomainEventHandler<K>>;
  }
}
