import { redact, runPlugin } from './cli';

describe(runPlugin.name, () => {
  it('answers version with text on stdout', async () => {
    const run = await runPlugin(['version'], '', {});
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/^signet - .+\nVersion: \d+\.\d+\.\d+/);
  });

  it('answers an unknown command with a JSON VALIDATION_ERROR and nothing on stdout', async () => {
    const run = await runPlugin(['generate-envelope'], '{}', {});
    expect(run).toEqual({ exitCode: 1, stderr: expect.any(String) });
    expect(JSON.parse(run.stderr!)).toEqual({
      errorCode: 'VALIDATION_ERROR',
      errorMessage: expect.stringContaining('generate-envelope'),
    });
  });

  it('requires contractVersion before anything else', async () => {
    const run = await runPlugin(['describe-key'], '{"keyId":"release"}', {});
    expect(JSON.parse(run.stderr!)).toEqual({
      errorCode: 'VALIDATION_ERROR',
      errorMessage: "'contractVersion' is required",
    });
  });

  it('refuses a pluginConfig that is not a map of strings', async () => {
    const run = await runPlugin(
      ['describe-key'],
      JSON.stringify({ contractVersion: '1.0', keyId: 'k', pluginConfig: { timeout_ms: 5 } }),
      {},
    );
    expect(JSON.parse(run.stderr!).errorMessage).toMatch(/'pluginConfig' must be an object of strings/);
  });
});

describe(redact.name, () => {
  it('replaces every occurrence of every secret', () => {
    expect(redact('a s3cr3t b s3cr3t c t0k', ['s3cr3t', 't0k', ''])).toBe('a [redacted] b [redacted] c [redacted]');
  });
});
