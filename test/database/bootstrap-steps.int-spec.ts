import { DataSource } from 'typeorm';
import { BootstrapService } from '../../src/database/bootstrap.service';
import { BootstrapStepsRepository } from '../../src/database/bootstrap-steps.repository';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { createTestDatabase, TestDatabase } from '../support/database';

/**
 * First-start bootstrap on real PostgreSQL: replicas starting together on one database take turns
 * on the bootstrap lock (BootstrapStepsRepository.whileBootstrapping), so each step runs once and
 * is recorded once; a later start finds it done.
 */
describe(BootstrapStepsRepository.name, () => {
  let database: TestDatabase;
  const dataSources: DataSource[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
  });

  afterAll(async () => {
    await Promise.all(dataSources.map((d) => d.destroy()));
    await database?.drop();
  });

  /** A replica: its own connection pool and its own BootstrapService. */
  async function replica(): Promise<{ steps: BootstrapStepsRepository; bootstrap: BootstrapService }> {
    const dataSource = await new DataSource(dataSourceOptions(database.url, 2)).initialize();
    dataSources.push(dataSource);
    const steps = new BootstrapStepsRepository(dataSource);
    return { steps, bootstrap: new BootstrapService(steps) };
  }

  it('runs a step once when two replicas start together, records it once, and skips it on the next start', async () => {
    const runs: string[] = [];
    const step = (who: string) => ({
      name: 'test.slow-step',
      order: 1,
      run: async () => {
        runs.push(who);
        // Long enough that, without the lock, the other replica would read the table before this records.
        await new Promise((resolve) => setTimeout(resolve, 300));
      },
    });
    const a = await replica();
    const b = await replica();
    a.bootstrap.register(step('a'));
    b.bootstrap.register(step('b'));

    await Promise.all([a.bootstrap.onApplicationBootstrap(), b.bootstrap.onApplicationBootstrap()]);

    expect(runs).toHaveLength(1);
    expect([...a.bootstrap.stepsRunHere, ...b.bootstrap.stepsRunHere]).toEqual(['test.slow-step']);
    expect(await a.steps.completedNames()).toContain('test.slow-step');

    const later = await replica();
    later.bootstrap.register(step('later'));
    await later.bootstrap.onApplicationBootstrap();
    expect(runs).toHaveLength(1);
    expect(later.bootstrap.stepsRunHere).toEqual([]);
  });

  it('holds the lock until the work ends: a second caller waits for it', async () => {
    const a = await replica();
    const b = await replica();
    const order: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const first = a.steps.whileBootstrapping(async () => {
      order.push('a in');
      await held;
      order.push('a out');
    });
    while (!order.includes('a in')) await new Promise((resolve) => setTimeout(resolve, 10));
    const second = b.steps.whileBootstrapping(async () => {
      order.push('b in');
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(order).toEqual(['a in']);
    release();
    await Promise.all([first, second]);
    expect(order).toEqual(['a in', 'a out', 'b in']);
  });
});
