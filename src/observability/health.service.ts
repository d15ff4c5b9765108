import { Injectable } from '@nestjs/common';

export interface HealthCheckResult {
  ok: boolean;
  [detail: string]: unknown;
}

/** Readiness checks registered by platform modules (database, HSM, clock, …). */
@Injectable()
export class HealthService {
  private readonly checks = new Map<string, () => Promise<HealthCheckResult>>();
  private drainingSince?: number;
  private closingConnectionsSince?: number;

  /**
   * Shutdown has begun (main.ts, on SIGTERM): /readyz answers 503 from now on, so balancers and
   * Kubernetes stop routing here while the replica still serves what reaches it.
   */
  startDraining(): void {
    this.drainingSince ??= Date.now();
  }

  get draining(): boolean {
    return this.drainingSince !== undefined;
  }

  /**
   * The listeners are closed (main.ts, after the drain delay): from now on every answer carries
   * `Connection: close`, so a client's pooled connection ends after its answer instead of being
   * cut while idle.
   */
  startClosingConnections(): void {
    this.closingConnectionsSince ??= Date.now();
  }

  get closingConnections(): boolean {
    return this.closingConnectionsSince !== undefined;
  }

  register(name: string, check: () => Promise<HealthCheckResult>): void {
    this.checks.set(name, check);
  }

  async readiness(): Promise<{ ready: boolean; checks: Record<string, HealthCheckResult> }> {
    const entries = await Promise.all(
      [...this.checks].map(async ([name, check]) => {
        try {
          return [name, await check()] as const;
        } catch (error) {
          return [name, { ok: false, error: (error as Error).message }] as const;
        }
      }),
    );
    const checks: Record<string, HealthCheckResult> = Object.fromEntries(entries);
    if (this.drainingSince !== undefined)
      checks.draining = { ok: false, since: new Date(this.drainingSince).toISOString() };
    return { ready: Object.values(checks).every((result) => result.ok), checks };
  }
}
