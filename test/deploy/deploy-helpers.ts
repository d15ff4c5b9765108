import * as fs from 'node:fs';
import * as path from 'node:path';
import { load } from 'js-yaml';
import { PROJECT_ROOT } from '../support/server-process';

/** Debian's `prometheus` package ships both (`apt-get install prometheus`; .ci/run installs it). */
export const PROMTOOL = 'promtool';
export const PROMETHEUS = 'prometheus';
export const RULES_FILE = path.join(PROJECT_ROOT, 'deploy', 'prometheus', 'alerts.yml');
export const DASHBOARD_FILE = path.join(PROJECT_ROOT, 'deploy', 'grafana', 'signet-dashboard.json');

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function alertRules(file = RULES_FILE): AlertRule[] {
  const doc = load(fs.readFileSync(file, 'utf8')) as { groups: Array<{ name: string; rules: AlertRule[] }> };
  return doc.groups.flatMap((g) => g.rules);
}

/** Every PromQL expression of the dashboard's panels (targets[].expr, nested rows included) and templating queries. */
export function dashboardExpressions(file = DASHBOARD_FILE): string[] {
  const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as {
    panels?: unknown[];
    templating?: { list?: Array<{ type: string; query?: unknown }> };
  };
  const exprs: string[] = [];
  const visit = (panel: { targets?: Array<{ expr?: string }>; panels?: unknown[] }) => {
    for (const target of panel.targets ?? []) if (target.expr) exprs.push(target.expr);
    for (const inner of panel.panels ?? []) visit(inner as never);
  };
  for (const panel of doc.panels ?? []) visit(panel as never);
  for (const variable of doc.templating?.list ?? []) {
    if (variable.type !== 'query') continue;
    const query =
      typeof variable.query === 'string' ? variable.query : (variable.query as { query?: string } | undefined)?.query;
    if (query) exprs.push(query);
  }
  return exprs;
}

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
  'atan2',
]);

/**
 * Metric names an expression selects: identifiers that are not functions (followed by "("),
 * keywords, label names (inside {} or by/without/on/ignoring (...)), range/offset durations or
 * string literals. Grafana variables ($__rate_interval, $job) are removed first; a `label_values(metric, label)`
 * templating query names its metric too.
 */
export function metricNames(expr: string): string[] {
  let text = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  const names = new Set<string>();
  const labelValues = /\blabel_values\s*\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,[^)]*\)/g;
  for (const m of text.matchAll(labelValues)) names.add(m[1]);
  text = text.replace(labelValues, ' ');
  for (const m of text.matchAll(/(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    if (m[2] || KEYWORDS.has(m[1].toLowerCase())) continue;
    names.add(m[1]);
  }
  return [...names];
}

/** Sample names a Prometheus text exposition can produce, from its `# TYPE` lines. */
export function exposedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m;
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    if (type === 'summary') for (const suffix of ['_sum', '_count']) names.add(name + suffix);
  }
  return names;
}

/** A dashboard expression with Grafana's variables filled in, as Prometheus would receive it. */
export function grafanaToPromql(expr: string): string {
  return expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m').replace(/\$\{?(\w+)\}?/g, '.*');
}
