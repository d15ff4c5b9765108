import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildStandalone } from './standalone';

describe(buildStandalone.name, () => {
  let dir: string;
  beforeEach(() => {
    // A miniature dist/src: notation-plugin/{main,version,helper}.js and common/shared.js.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'signet-standalone-'));
    fs.mkdirSync(path.join(dir, 'src', 'notation-plugin'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'src', 'common'));
    const write = (file: string, text: string) => fs.writeFileSync(path.join(dir, 'src', file), text);
    write('common/shared.js', '"use strict";\nexports.greet = (v) => `hello ${v}`;\n');
    write(
      'notation-plugin/version.js',
      '"use strict";\nexports.pluginVersion = () => { throw new Error("reads package.json"); };\n',
    );
    write(
      'notation-plugin/helper.js',
      '"use strict";\nconst shared_1 = require("../common/shared");\nexports.line = (v) => shared_1.greet(v);\n',
    );
    write(
      'notation-plugin/main.js',
      '"use strict";\nconst os = require("node:os");\nconst helper_1 = require("./helper");\nconst version_1 = require("./version");\n' +
        'process.stdout.write(helper_1.line(version_1.pluginVersion()) + " " + typeof os.platform() + "\\n");\n//# sourceMappingURL=main.js.map\n',
    );
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes one executable file holding the module graph, with the version baked in', () => {
    const out = path.join(dir, 'out', 'notation-signet');
    buildStandalone(path.join(dir, 'src', 'notation-plugin', 'main.js'), out, '9.8.7');
    expect(fs.statSync(out).mode & 0o777).toBe(0o755);
    const text = fs.readFileSync(out, 'utf8');
    expect(text.startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(text).not.toContain('sourceMappingURL');
    fs.rmSync(path.join(dir, 'src'), { recursive: true }); // it must not need the tree it came from
    expect(execFileSync(process.execPath, [out], { encoding: 'utf8' })).toBe('hello 9.8.7 string\n');
  });

  it('refuses a dependency that is not a Node built-in', () => {
    fs.appendFileSync(path.join(dir, 'src', 'notation-plugin', 'helper.js'), 'require("undici");\n');
    expect(() =>
      buildStandalone(path.join(dir, 'src', 'notation-plugin', 'main.js'), path.join(dir, 'x'), '1.0.0'),
    ).toThrow(/notation-plugin\/helper\.js requires 'undici'/);
  });
});
