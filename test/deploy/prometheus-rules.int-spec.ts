import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { dump, load } from 'js-yaml';
import { PROJECT_ROOT, tempDir } from '../support/server-process';
import { alertRules, dashboardExpressions, grafanaToPromql, PROMTOOL, RULES_FILE } from './deploy-helpers';

const run = promisify(execFile);
const TESTS_DIR = path.join(PROJECT_ROOT, 'deploy', 'prometheus', 'tests');

/** promtool's exit code and combined output (it exits 1 when a unit test fails). */
async function promtool(...args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(PROMTOOL, args, { cwd: PROJECT_ROOT });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** The unit-test files, rewritten to load `rulesFile` instead of alerts.yml. */
function testsAgainst(rulesFile: string, dir: string): string[] {
  return fs
    .readdirSync(TESTS_DIR)
    .filter((f) => f.endsWith('.yml'))
    .map((f) => {
      const doc = load(fs.readFileSync(path.join(TESTS_DIR, f), 'utf8')) as { rule_files: string[] };
      doc.rule_files = [rulesFile];
      const out = path.join(dir, f);
      fs.writeFileSync(out, dump(doc));
      return out;
    });
}

/** alerts.yml with every alert's expression (and `for`) replaced. */
function mutatedRules(dir: string, name: string, expr: string): string {
  const doc = load(fs.readFileSync(RULES_FILE, 'utf8')) as { groups: Array<{ rules: Array<Record<string, unknown>> }> };
  for (const group of doc.groups) for (const rule of group.rules) Object.assign(rule, { expr, for: '0m' });
  const file = path.join(dir, name);
  fs.writeFileSync(file, dump(doc));
  return file;
}

/** Alert names of failed promtool cases whose expectation was "no alert" (empty) or "some alert". */
function failedCases(output: string, expected: 'none' | 'some'): Set<string> {
  const pattern =
    expected === 'none'
      ? /alertname: (\w+), time: [^\n]*\n\s*exp:\[\]/g
      : /alertname: (\w+), time: [^\n]*\n\s*exp:\[\n/g;
  return new Set([...output.matchAll(pattern)].map((m) => m[1]));
}

describe('Prometheus alerting rules (deploy/prometheus/alerts.yml, checked by the real promtool)', () => {
  const names = alertRules().map((r) => r.alert);

  it('pass `promtool check rules`', async () => {
    const { code, output } = await promtool('check', 'rules', RULES_FILE);
    expect(output).toContain(`SUCCESS: ${alertRules().length} rules found`);
    expect(code).toBe(0);
  });

  it('pass their unit tests (`promtool test rules deploy/prometheus/tests/*.yml`)', async () => {
    const files = fs
      .readdirSync(TESTS_DIR)
      .filter((f) => f.endsWith('.yml'))
      .map((f) => path.join(TESTS_DIR, f));
    expect(files.length).toBeGreaterThan(0);
    const { code, output } = await promtool('test', 'rules', ...files);
    expect(output).not.toContain('FAILED');
    expect(code).toBe(0);
  });

  it('every alert has a case where it fires: with every expression emptied, each alert fails a "fires" expectation', async () => {
    const dir = tempDir('promtool-never-');
    const { code, output } = await promtool(
      'test',
      'rules',
      ...testsAgainst(mutatedRules(dir, 'never.yml', 'vector(1) == 0'), dir),
    );
    expect(code).not.toBe(0);
    expect([...failedCases(output, 'some')].sort()).toEqual([...names].sort());
  });

  it('every alert has a case where it stays silent: with every expression always true, each alert fails a "silent" expectation', async () => {
    const dir = tempDir('promtool-always-');
    const { code, output } = await promtool(
      'test',
      'rules',
      ...testsAgainst(mutatedRules(dir, 'always.yml', 'vector(1)'), dir),
    );
    expect(code).not.toBe(0);
    expect([...failedCases(output, 'none')].sort()).toEqual([...names].sort());
  });

  it("the Grafana dashboard's expressions are valid PromQL (checked as recording rules by promtool)", async () => {
    const exprs = dashboardExpressions().filter((e) => !e.startsWith('label_values('));
    expect(exprs.length).toBeGreaterThan(10);
    const file = path.join(tempDir('promtool-dashboard-'), 'dashboard-rules.yml');
    fs.writeFileSync(
      file,
      dump({
        groups: [
          {
            name: 'dashboard',
            rules: exprs.map((expr, i) => ({ record: `dashboard:expr${i}`, expr: grafanaToPromql(expr) })),
          },
        ],
      }),
    );
    const { code, output } = await promtool('check', 'rules', file);
    expect(output).toContain(`SUCCESS: ${exprs.length} rules found`);
    expect(code).toBe(0);
  });

  it('every alert has a severity and a runbook entry in docs/operations.md', () => {
    const doc = fs.readFileSync(path.join(PROJECT_ROOT, 'docs', 'operations.md'), 'utf8');
    // GitHub's anchor of a "### SignetFoo" heading is "#signetfoo".
    const anchors = new Set(
      [...doc.matchAll(/^#{2,4} (.+)$/gm)].map(
        (m) =>
          '#' +
          m[1]
            .trim()
            .toLowerCase()
            .replace(/[^a-z0-9 -]/g, '')
            .replace(/ /g, '-'),
      ),
    );
    for (const rule of alertRules()) {
      expect(['warning', 'critical']).toContain(rule.labels?.severity);
      expect(rule.annotations?.runbook).toBe(`docs/operations.md#${rule.alert.toLowerCase()}`);
      expect(anchors).toContain(`#${rule.alert.toLowerCase()}`);
    }
  });
});
