import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv, { AnySchema, ErrorObject, FuncKeywordDefinition, ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { load } from 'js-yaml';

/**
 * The consumers' own CustomResourceDefinitions (`../shared/schemas/`, see its README) as validators:
 * what that consumer's API server would accept. Each served version's
 * `spec.versions[].schema.openAPIV3Schema` runs as JSON Schema (ajv), with the Kubernetes extensions
 * given their API-server meaning:
 *   - an object schema with `properties` and neither `additionalProperties` nor
 *     `x-kubernetes-preserve-unknown-fields` gets `additionalProperties: false`: the API server would
 *     silently prune an unknown field, so for Signet's output an unknown field is an error (a typo
 *     that the consumer would never see);
 *   - `x-kubernetes-int-or-string` → an integer or a string; `nullable` (OpenAPI) → ajv's own;
 *   - `x-kubernetes-list-type: set` → unique items; `map` → unique `x-kubernetes-list-map-keys`;
 *   - formats the API server does not check (int32, int64, byte, …) are accepted as they come;
 *   - `x-kubernetes-validations` (CEL, which no JSON Schema validator runs): every rule must have a
 *     TypeScript implementation given by the caller, named and matched on the rule's exact text, or
 *     validation fails — so a CRD update that adds a rule fails the tests until someone writes it.
 * Plus the ObjectMeta checks the API server makes before any of that (name, labels, scope).
 */
export const SCHEMAS_DIR = path.resolve(__dirname, '..', '..', '..', 'shared', 'schemas');

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- CRD documents and objects are read loosely
type Loose = any;

export interface CelRule {
  /** What the rule says, for test names and messages. */
  name: string;
  /** The rule's exact CEL text, whitespace-normalised. */
  rule: string;
  /** The rule evaluated in TypeScript on `self` (the value at the rule's place). */
  holds: (self: Loose) => boolean;
}

export interface CrdRuleSite {
  /** JSON-pointer-like place in the schema (`/spec/sources/items`). */
  at: string;
  rule: string;
  message?: string;
}

export interface Crd {
  file: string;
  group: string;
  kind: string;
  plural: string;
  scope: 'Cluster' | 'Namespaced';
  versions: Array<{ name: string; served: boolean; storage: boolean; schema: Loose }>;
}

const normalise = (rule: string) => rule.replace(/\s+/g, ' ').trim();

export function loadCrd(file: string): Crd {
  const document = load(fs.readFileSync(path.join(SCHEMAS_DIR, file), 'utf8')) as Loose;
  if (document?.kind !== 'CustomResourceDefinition') throw new Error(`${file} is not a CustomResourceDefinition`);
  return {
    file,
    group: document.spec.group,
    kind: document.spec.names.kind,
    plural: document.spec.names.plural,
    scope: document.spec.scope,
    versions: document.spec.versions.map((v: Loose) => ({
      name: v.name,
      served: v.served,
      storage: v.storage,
      schema: v.schema.openAPIV3Schema,
    })),
  };
}

/** Every CEL rule of a CRD version, with where it sits. */
export function celRuleSites(crd: Crd, version: string): CrdRuleSite[] {
  const sites: CrdRuleSite[] = [];
  const walk = (node: Loose, at: string) => {
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node)) return node.forEach((child, i) => walk(child, `${at}/${i}`));
    for (const rule of node['x-kubernetes-validations'] ?? [])
      sites.push({ at: at.replace(/\/properties/g, '') || '/', rule: normalise(rule.rule), message: rule.message });
    for (const [key, child] of Object.entries(node))
      if (key !== 'x-kubernetes-validations') walk(child, `${at}/${key}`);
  };
  walk(versionOf(crd, version).schema, '');
  return sites;
}

function versionOf(crd: Crd, version: string) {
  const found = crd.versions.find((v) => v.name === version);
  if (!found) throw new Error(`${crd.file} has no version ${version}`);
  return found;
}

/** The schema as ajv should run it (see the header); `x-kubernetes-*` keywords are handled by keywords registered below. */
function forAjv(node: Loose): Loose {
  if (Array.isArray(node)) return node.map(forAjv);
  if (!node || typeof node !== 'object') return node;
  const out: Loose = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'description') continue;
    // `properties`' keys are field names, not keywords: convert each field's schema, keep the names.
    out[key] =
      key === 'properties'
        ? Object.fromEntries(Object.entries(value as object).map(([name, schema]) => [name, forAjv(schema)]))
        : forAjv(value);
  }
  if (out.properties && out.additionalProperties === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true)
    out.additionalProperties = false;
  return out;
}

function collectFormats(node: Loose, into: Set<string>): Set<string> {
  if (node && typeof node === 'object') {
    if (typeof node.format === 'string') into.add(node.format);
    for (const child of Object.values(node)) collectFormats(child, into);
  }
  return into;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(|[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;

export function isQualifiedName(key: string): boolean {
  const slash = key.lastIndexOf('/');
  if (slash < 0) return LABEL_NAME.test(key);
  const prefix = key.slice(0, slash);
  return prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix) && LABEL_NAME.test(key.slice(slash + 1));
}

/** ObjectMeta as the API server checks it for any object: name, namespace by scope, labels, annotations. */
export function objectMetaProblems(object: Loose, scope: 'Cluster' | 'Namespaced'): string[] {
  const problems: string[] = [];
  const metadata = object?.metadata;
  if (!metadata || typeof metadata !== 'object') return ['metadata: Required value'];
  if (typeof metadata.name !== 'string' || metadata.name.length > 253 || !DNS_SUBDOMAIN.test(metadata.name))
    problems.push(`metadata.name: Invalid value: ${JSON.stringify(metadata.name)}: a DNS-1123 subdomain`);
  if (scope === 'Cluster' && metadata.namespace !== undefined)
    problems.push('metadata.namespace: a cluster-scoped object takes no namespace');
  for (const [key, value] of Object.entries(metadata.labels ?? {})) {
    if (!isQualifiedName(key))
      problems.push(`metadata.labels: Invalid value: ${JSON.stringify(key)}: a qualified name`);
    if (typeof value !== 'string' || !LABEL_VALUE.test(value))
      problems.push(`metadata.labels: Invalid value: ${JSON.stringify(value)}: a label value`);
  }
  const annotations = metadata.annotations ?? {};
  for (const [key, value] of Object.entries(annotations)) {
    if (!isQualifiedName(key))
      problems.push(`metadata.annotations: Invalid value: ${JSON.stringify(key)}: a qualified name`);
    if (typeof value !== 'string') problems.push(`metadata.annotations.${key}: must be a string`);
  }
  if (Object.entries(annotations).reduce((n, [k, v]) => n + k.length + String(v).length, 0) > 256 * 1024)
    problems.push('metadata.annotations: Too long: must have at most 262144 bytes');
  return problems;
}

export interface CrdValidator {
  crd: Crd;
  version: string;
  /** Problems the API server would answer (422) for `object`; empty when it would accept it. */
  problems(object: Loose): string[];
  /** A copy of `object` with the schema's `default:` values applied, as the API server stores it. */
  withDefaults(object: Loose): Loose;
  /** The CEL rules evaluated so far (rule text → times), to prove a test exercised them. */
  evaluated: Map<string, number>;
}

/**
 * A validator for one served version of a CRD. `rules` must implement every CEL rule of that
 * version (none more), else this throws: the caller's list is the complete list of rules that apply.
 */
export function crdValidator(file: string, version: string, rules: CelRule[] = []): CrdValidator {
  const crd = loadCrd(file);
  const entry = versionOf(crd, version);
  if (!entry.served) throw new Error(`${file} does not serve ${version}`);
  const sites = celRuleSites(crd, version);
  const byText = new Map(rules.map((r) => [normalise(r.rule), r]));
  const missing = sites.filter((s) => !byText.has(s.rule));
  if (missing.length)
    throw new Error(
      `${file} ${version}: no TypeScript implementation of CEL rule(s): ${missing.map((s) => `${s.at}: ${s.rule}`).join(' | ')}`,
    );
  const unused = rules.filter((r) => !sites.some((s) => s.rule === normalise(r.rule)));
  if (unused.length)
    throw new Error(`${file} ${version}: rule(s) not in the CRD: ${unused.map((r) => r.name).join(', ')}`);

  const evaluated = new Map<string, number>();
  const build = (useDefaults: boolean): ValidateFunction => {
    const ajv = new Ajv({ strict: false, allErrors: true, useDefaults, validateFormats: true });
    addFormats(ajv);
    for (const format of collectFormats(entry.schema, new Set())) if (!ajv.formats[format]) ajv.addFormat(format, true);
    ajv.addKeyword({
      keyword: 'x-kubernetes-int-or-string',
      schemaType: 'boolean',
      validate: (on: boolean, data: unknown) => !on || typeof data === 'string' || Number.isInteger(data),
    });
    ajv.addKeyword({
      keyword: 'x-kubernetes-list-type',
      schemaType: 'string',
      validate: function listType(this: unknown, type: string, data: unknown, parentSchema?: AnySchema) {
        if (!Array.isArray(data)) return true;
        if (type === 'set') return new Set(data.map((d) => JSON.stringify(d))).size === data.length;
        if (type === 'map') {
          const keys = ((parentSchema as Loose)?.['x-kubernetes-list-map-keys'] ?? []) as string[];
          return new Set(data.map((d) => JSON.stringify(keys.map((k) => (d as Loose)?.[k])))).size === data.length;
        }
        return true;
      },
    });
    for (const keyword of [
      'x-kubernetes-preserve-unknown-fields',
      'x-kubernetes-map-type',
      'x-kubernetes-list-map-keys',
      'x-kubernetes-embedded-resource',
    ])
      ajv.addKeyword({ keyword });
    const celKeyword: FuncKeywordDefinition = {
      keyword: 'x-kubernetes-validations',
      schemaType: 'array',
      errors: true,
      validate: function cel(list: Array<{ rule: string; message?: string }>, data: unknown): boolean {
        const failed: ErrorObject[] = [];
        for (const site of list) {
          const implementation = byText.get(normalise(site.rule))!;
          evaluated.set(implementation.rule, (evaluated.get(implementation.rule) ?? 0) + 1);
          if (!implementation.holds(data)) {
            failed.push({
              keyword: 'x-kubernetes-validations',
              instancePath: '',
              schemaPath: '',
              params: { rule: implementation.name },
              message: site.message ?? `failed rule: ${site.rule}`,
            });
          }
        }
        (cel as unknown as { errors: ErrorObject[] }).errors = failed;
        return failed.length === 0;
      },
    };
    ajv.addKeyword(celKeyword);
    return ajv.compile(forAjv(entry.schema));
  };
  const validate = build(false);
  const defaulting = build(true);

  return {
    crd,
    version,
    evaluated,
    problems(object: Loose): string[] {
      const problems: string[] = [];
      if (object?.apiVersion !== `${crd.group}/${version}`)
        problems.push(`apiVersion: ${JSON.stringify(object?.apiVersion)} is not ${crd.group}/${version}`);
      if (object?.kind !== crd.kind) problems.push(`kind: ${JSON.stringify(object?.kind)} is not ${crd.kind}`);
      problems.push(...objectMetaProblems(object, crd.scope));
      if (!validate(object)) {
        for (const error of validate.errors ?? []) {
          const extra =
            error.keyword === 'additionalProperties'
              ? ` (${String(error.params.additionalProperty)})`
              : error.keyword === 'x-kubernetes-validations'
                ? ` [${String(error.params.rule)}]`
                : '';
          problems.push(`${error.instancePath || '/'}: ${error.message ?? error.keyword}${extra}`);
        }
      }
      return problems;
    },
    withDefaults(object: Loose): Loose {
      const copy = structuredClone(object);
      defaulting(copy);
      return copy;
    },
  };
}
