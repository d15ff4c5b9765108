import fc from 'fast-check';
import { Counter, Histogram, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from './fast-metrics';

const BUCKETS = [0.001, 0.005, 0.01, 0.1, 1, 5];

/** Two registries with the same default labels: one with prom-client's types, one with ours. */
function pair() {
  const reference = new Registry();
  const fast = new Registry();
  for (const registry of [reference, fast]) registry.setDefaultLabels({ service: 'signet' });
  return {
    reference,
    fast,
    counter: new Counter({
      name: 'x_requests_total',
      help: 'Requests',
      labelNames: ['method', 'route', 'status'],
      registers: [reference],
    }),
    fastCounter: new FastCounter('x_requests_total', 'Requests', ['method', 'route', 'status'], fast),
    histogram: new Histogram({
      name: 'x_duration_seconds',
      help: 'Latency',
      labelNames: ['method', 'route', 'status'],
      buckets: BUCKETS,
      registers: [reference],
    }),
    fastHistogram: new FastHistogram('x_duration_seconds', 'Latency', ['method', 'route', 'status'], BUCKETS, fast),
  };
}

describe('fast metrics', () => {
  it("expose exactly what prom-client's Counter and Histogram expose for the same observations", async () => {
    const observation = fc.record({
      method: fc.constantFrom('GET', 'POST'),
      route: fc.constantFrom('/v1/keys/:name/sign', '/healthz', 'unmatched', 'a"b\\c\nd'),
      status: fc.constantFrom(200, 401, 404, 503),
      // Bucket edges included: a value equal to a bound belongs to that bucket.
      seconds: fc.oneof(fc.double({ min: 0, max: 10, noNaN: true }), fc.constantFrom(...BUCKETS, 0, 100)),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(observation, { maxLength: 60 }), async (observations) => {
        const m = pair();
        for (const o of observations) {
          const labels = { method: o.method, route: o.route, status: String(o.status) };
          m.counter.inc(labels);
          m.histogram.observe(labels, o.seconds);
          m.fastCounter.labels(o.method, o.route, String(o.status)).inc();
          m.fastHistogram.labels(o.method, o.route, String(o.status)).observe(o.seconds);
        }
        return (await m.fast.metrics()) === (await m.reference.metrics());
      }),
      { numRuns: 200 },
    );
  });

  it('expose zeroed buckets for an unlabelled histogram before any observation, as prom-client does', async () => {
    const reference = new Registry();
    const fast = new Registry();
    new Histogram({ name: 'batch_size', help: 'Events per batch', buckets: [1, 10, 100], registers: [reference] });
    new FastHistogram('batch_size', 'Events per batch', [], [1, 10, 100], fast).labels();
    expect(await fast.metrics()).toBe(await reference.metrics());
    expect(await fast.metrics()).toContain('batch_size_bucket{le="+Inf"} 0');
  });

  it('refuse a wrong number of label values and non-finite observations', () => {
    const { fastHistogram } = pair();
    expect(() => fastHistogram.labels('GET')).toThrow(/expected 3 label values/);
    expect(() => fastHistogram.labels('GET', '/', '200').observe(Number.NaN)).toThrow(TypeError);
  });
});
