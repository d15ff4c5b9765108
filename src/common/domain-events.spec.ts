import { DomainEventBus } from './domain-events';

declare module './domain-events' {
  interface DomainEvents {
    'test.happened': { n: number };
    'test.other': { n: number };
  }
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe(DomainEventBus.name, () => {
  it('runs subscribers in the order they subscribed, each awaited before the next starts', async () => {
    const bus = new DomainEventBus();
    const log: string[] = [];
    bus.subscribe('test.happened', async ({ n }) => {
      log.push(`a start ${n}`);
      await tick();
      await tick();
      log.push(`a end ${n}`);
    });
    bus.subscribe('test.happened', ({ n }) => {
      log.push(`b ${n}`);
    });
    bus.subscribe('test.happened', async ({ n }) => {
      await tick();
      log.push(`c ${n}`);
    });
    await bus.publish('test.happened', { n: 1 });
    expect(log).toEqual(['a start 1', 'a end 1', 'b 1', 'c 1']);
  });

  it('delivers an event only to the subscribers of its name', async () => {
    const bus = new DomainEventBus();
    const seen: string[] = [];
    bus.subscribe('test.happened', () => void seen.push('happened'));
    bus.subscribe('test.other', () => void seen.push('other'));
    await bus.publish('test.other', { n: 1 });
    expect(seen).toEqual(['other']);
    expect(bus.hasSubscribers('test.happened')).toBe(true);
    expect(new DomainEventBus().hasSubscribers('test.happened')).toBe(false);
    await expect(new DomainEventBus().publish('test.happened', { n: 1 })).resolves.toBeUndefined();
  });

  it('publish: the first failure (thrown or rejected) stops the later subscribers and rejects with that error', async () => {
    const bus = new DomainEventBus();
    const ran: string[] = [];
    const failure = new Error('subscriber b failed');
    bus.subscribe('test.happened', () => void ran.push('a'));
    bus.subscribe('test.happened', async () => {
      await tick();
      throw failure;
    });
    bus.subscribe('test.happened', () => void ran.push('c'));
    await expect(bus.publish('test.happened', { n: 1 })).rejects.toBe(failure);
    expect(ran).toEqual(['a']);

    const sync = new DomainEventBus();
    sync.subscribe('test.happened', () => {
      throw failure;
    });
    await expect(sync.publish('test.happened', { n: 1 })).rejects.toBe(failure);
  });

  it('publishEach: a failure goes to onFailure and the later subscribers still run, in order', async () => {
    const bus = new DomainEventBus();
    const ran: string[] = [];
    const failures: unknown[] = [];
    const failure = new Error('subscriber b failed');
    bus.subscribe('test.happened', async () => {
      await tick();
      ran.push('a');
    });
    bus.subscribe('test.happened', () => {
      throw failure;
    });
    bus.subscribe('test.happened', async () => {
      await tick();
      ran.push('c');
    });
    await bus.publishEach('test.happened', { n: 1 }, (error) => failures.push(error));
    expect(ran).toEqual(['a', 'c']);
    expect(failures).toEqual([failure]);
  });

  it('a subscriber added while an event is delivered hears the next event, not the current one', async () => {
    const bus = new DomainEventBus();
    const seen: number[] = [];
    bus.subscribe('test.happened', ({ n }) => {
      if (n === 1) bus.subscribe('test.happened', ({ n: m }) => void seen.push(m));
    });
    await bus.publish('test.happened', { n: 1 });
    await bus.publish('test.happened', { n: 2 });
    expect(seen).toEqual([2]);
  });
});
