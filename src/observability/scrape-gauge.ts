import type { Registry } from 'prom-client';

/**
 * A gauge without labels whose value is read at scrape time and may be absent. prom-client's own
 * Gauge always exposes a label-less value (0 until set), which would read as "checkpoint at Unix
 * time 0"; this one exposes only its HELP and TYPE lines while `read` returns undefined.
 */
export class ScrapeGauge {
  readonly type = 'gauge' as const;
  readonly aggregator = 'sum' as const;

  constructor(
    readonly name: string,
    readonly help: string,
    registry: Registry,
    private readonly read: () => Promise<number | undefined>,
  ) {
    registry.registerMetric(this as never);
  }

  async get(): Promise<{
    name: string;
    help: string;
    type: 'gauge';
    aggregator: 'sum';
    values: Array<{ labels: Record<string, string>; value: number }>;
  }> {
    const value = await this.read();
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: value === undefined ? [] : [{ labels: {}, value }],
    };
  }

  reset(): void {
    // Nothing is stored: every scrape reads afresh.
  }
}
