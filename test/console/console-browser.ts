import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { buildConsole } from '../../src/console/build';
import { PROJECT_ROOT, tempDir } from '../support/server-process';

/**
 * Debian's Chromium driven by playwright-core, for the security console's browser tests. Nothing
 * is downloaded: the browser is the system one, started with every background fetch off (the
 * machine has no internet) and a fresh profile each time.
 */
export const CHROMIUM = process.env.SIGNET_TEST_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOT_DIR = path.join(PROJECT_ROOT, 'test', 'console', 'output');

export async function launchChromium(): Promise<BrowserContext> {
  if (!fs.existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: apt-get install chromium (or set SIGNET_TEST_CHROMIUM)`);
  return chromium.launchPersistentContext(tempDir('chromium-profile-'), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
  });
}

/** Builds dist/console from src/console/web once per test run (the server serves it at /console). */
export async function ensureConsoleBuilt(): Promise<void> {
  const marker = path.join(process.env.SIGNET_TEST_RUN_DIR ?? tempDir('console-build-'), '.console-built');
  if (fs.existsSync(marker)) return;
  await buildConsole(path.join(PROJECT_ROOT, 'src', 'console', 'web'), path.join(PROJECT_ROOT, 'dist', 'console'));
  fs.writeFileSync(marker, '');
}

export async function screenshot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: Array<{ target: string[] }>;
}

/**
 * Runs axe-core (from npm) in the page and returns the serious and critical violations. It goes in
 * through the DevTools protocol, which the page's CSP does not govern: a <script> tag would be
 * refused (rightly) and the test would have to weaken the policy it is checking.
 */
export async function seriousAxeViolations(page: Page): Promise<AxeViolation[]> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Runtime.evaluate', { expression: fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8') });
  await cdp.detach();
  const violations = await page.evaluate<AxeViolation[]>(`(async () => {
    const result = await axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) }));
  })()`);
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}
