import { createTrustTarget } from '../../src/distribution/drivers/trust-target.factory';
import { TargetError } from '../../src/distribution/drivers/target-error';
import { TrustTarget } from '../../src/distribution/drivers/trust-target';
import { startSilentServer, TestRegistry } from '../support/registry';
import { freePort } from '../support/server-process';
import { dummyBundle, noAbort } from './bundle-fixtures';

/** Targets that are down, hang, or get cancelled: every failure is typed and says whether to retry. */
describe('distribution transport failures', () => {
  const targets: TrustTarget[] = [];
  function target(endpoint: string, requestTimeoutMs: number): TrustTarget {
    const made = createTrustTarget({
      kind: 'oci-registry',
      endpoint,
      repository: 'signet/truststore',
      allowedHosts: [],
      allowLoopback: true,
      requestTimeoutMs,
    });
    targets.push(made);
    return made;
  }

  afterAll(async () => {
    await Promise.all(targets.map((t) => t.close()));
  });

  describe('a registry that goes down and comes back (real docker-registry, stopped and restarted)', () => {
    let registry: TestRegistry;

    beforeAll(async () => {
      registry = await TestRegistry.start({ auth: 'none' });
    });

    afterAll(async () => {
      await registry?.dispose();
    });

    it('fails with a retryable unreachable error while down, and the same driver succeeds after the restart', async () => {
      const driver = target(registry.url, 10_000);
      const v1 = await dummyBundle(1);
      await driver.push(v1, noAbort());

      await registry.stop();
      const v2 = await dummyBundle(2);
      const error = await driver.push(v2, noAbort()).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TargetError);
      expect(error).toMatchObject({ kind: 'unreachable', retryable: true, code: 'TARGET_FAILED' });

      await registry.startProcess();
      await expect(driver.push(v2, noAbort())).resolves.toMatchObject({ deliveredDigest: v2.digest });
      await expect(driver.readBack(noAbort())).resolves.toMatchObject({ digest: v2.digest, version: 2 });
    });
  });

  it('a port nobody listens on: retryable unreachable error', async () => {
    const port = await freePort();
    const error = await target(`http://127.0.0.1:${port}`, 10_000)
      .readBack(noAbort())
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: 'unreachable', retryable: true });
  });

  describe('a server that accepts connections and never answers', () => {
    let silent: Awaited<ReturnType<typeof startSilentServer>>;

    beforeAll(async () => {
      silent = await startSilentServer();
    });

    afterAll(async () => {
      await silent?.close();
    });

    it('the per-request timeout fires with a retryable timeout error', async () => {
      const error = await target(silent.url, 300)
        .push(await dummyBundle(1), noAbort())
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TargetError);
      expect(error).toMatchObject({ kind: 'timeout', retryable: true });
      expect((error as TargetError).details).toMatchObject({ timeoutMs: 300 });
    });

    it("the caller's AbortSignal cancels a hanging request", async () => {
      const controller = new AbortController();
      const pending = target(silent.url, 120_000)
        .readBack(controller.signal)
        .catch((e: unknown) => e);
      setTimeout(() => controller.abort(), 100);
      await expect(pending).resolves.toMatchObject({ kind: 'cancelled', retryable: true });
    });
  });
});
