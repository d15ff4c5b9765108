import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { openssl, SignetApi, startSignet, stopSignet, SUBJECT } from '../notation/support/notation-kit';
import { TestRegistry } from '../support/registry';
import { ensureBuilt, ServerProcess, tempDir } from '../support/server-process';
import { ensureConsoleBuilt, launchChromium, screenshot, seriousAxeViolations } from './console-browser';

/**
 * The security console in Debian's Chromium against the real server (node dist/src/main.js on
 * embedded defaults, dist/console served at /console), with a real docker-registry as the one
 * distribution target: sign-in and sign-out, cookie and CSRF rules, what each role sees and may
 * do, revocation followed to the end and confirmed with `openssl ocsp`, the fleet grid following a
 * registry that stops and comes back, the audit filter, and an axe-core scan of every view.
 */
const VIEWS = ['overview', 'revoke', 'fleet', 'rotations', 'audit'] as const;
const WAIT = { timeout: 120_000 };

describe('security console (Chromium)', () => {
  let server: ServerProcess;
  let api: SignetApi;
  let admin: string;
  let registry: TestRegistry;
  let browser: BrowserContext;
  const tokens: Record<'security-officer' | 'auditor' | 'signer', string> = {
    'security-officer': '',
    auditor: '',
    signer: '',
  };

  async function created(method: string, route: string, body: unknown): Promise<Record<string, unknown>> {
    const answer = await api(method, route, body);
    if (answer.status >= 300) throw new Error(`${method} ${route}: ${answer.status} ${answer.raw.toString()}`);
    return answer.json;
  }

  beforeAll(async () => {
    ensureBuilt();
    await ensureConsoleBuilt();
    registry = await TestRegistry.start({ auth: 'none' });
    ({ server, api, admin } = await startSignet('console-', {
      SIGNET_DISTRIBUTION_ALLOW_LOOPBACK: 'true',
      SIGNET_DISTRIBUTION_INTERVAL_SECONDS: '2',
      SIGNET_DISTRIBUTION_BACKOFF_BASE_MS: '200',
      SIGNET_DISTRIBUTION_BACKOFF_MAX_MS: '1000',
      SIGNET_DISTRIBUTION_VERIFY_SECONDS: '2',
    }));
    await created('POST', '/v1/keys', { name: 'release', keySpec: 'EC-256', subject: { ...SUBJECT, CN: 'release' } });
    await created('POST', '/v1/truststores', { name: 'production', cas: ['signet-dev-root'] });
    await created('POST', '/v1/regions', { name: 'eu' });
    await created('POST', '/v1/regions/eu/targets', {
      name: 'registry',
      kind: 'oci-registry',
      endpoint: registry.url,
      repository: 'signet/truststore',
      truststore: 'production',
    });
    for (const role of Object.keys(tokens) as Array<keyof typeof tokens>) {
      tokens[role] = (
        await created('POST', '/v1/tokens', {
          name: `console-${role}`,
          role,
          ...(role === 'signer' ? { keys: ['release'] } : {}),
        })
      ).token as string;
    }
    browser = await launchChromium();
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await stopSignet(server);
    await registry?.dispose();
  });

  async function signIn(token: string): Promise<Page> {
    // Each test signs in afresh, whatever an earlier one left behind.
    await browser.clearCookies();
    const page = await browser.newPage();
    await page.goto(`${server.url}/console`);
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    return page;
  }

  async function signOut(page: Page): Promise<void> {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token').waitFor();
    await page.close();
  }

  async function open(page: Page, view: (typeof VIEWS)[number]): Promise<void> {
    await page
      .getByRole('navigation', { name: 'Views' })
      .getByRole('link', { name: new RegExp(`^${view}$`, 'i') })
      .click();
    await page.getByRole('heading', { level: 1, name: new RegExp(`^${view}$`, 'i') }).waitFor();
    await page.locator('.loading').first().waitFor({ state: 'detached', timeout: 60_000 });
  }

  it('signs in with an admin token, keeps the token nowhere, and signs out', async () => {
    const page = await signIn(admin);
    await page.getByTestId('role').filter({ hasText: 'admin' }).waitFor();
    const stored = await page.evaluate<string>(
      'JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie })',
    );
    expect(stored).not.toContain(admin);
    expect(stored).not.toContain('signet_session');
    // A reload keeps the session (the cookie), without asking for the token again.
    await page.reload();
    await page.getByTestId('role').filter({ hasText: 'admin' }).waitFor();
    await screenshot(page, 'signed-in');
    const [cookie] = (await browser.cookies(server.url)).filter((c) => c.name.endsWith('signet_session'));
    await signOut(page);
    expect((await browser.cookies(server.url)).filter((c) => c.name.endsWith('signet_session'))).toEqual([]);
    // The old cookie is dead on the server too, not only forgotten by the browser.
    const replay = await fetch(`${server.url}/v1/sessions/current`, {
      headers: { cookie: `${cookie.name}=${cookie.value}` },
    });
    expect(replay.status).toBe(401);
  });

  it('sets the session cookie HttpOnly, SameSite=Strict, Path=/, and refuses a cookie write without the CSRF header', async () => {
    const page = await signIn(admin);
    await page.getByTestId('role').waitFor();
    const [cookie] = (await browser.cookies(server.url)).filter((c) => c.name.endsWith('signet_session'));
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
    expect(cookie.expires).toBe(-1); // a session cookie: gone with the browser
    const answers = await page.evaluate(async () => {
      const noHeader = await fetch('/v1/audit/checkpoints', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      const session = (await (await fetch('/v1/sessions/current')).json()) as { csrfToken: string };
      const withHeader = await fetch('/v1/audit/checkpoints', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrfToken },
        body: '{}',
      });
      const wrongHeader = await fetch('/v1/audit/checkpoints', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': 'x'.repeat(43) },
        body: '{}',
      });
      return {
        noHeader: noHeader.status,
        noHeaderBody: (await noHeader.json()) as { error: { code: string } },
        withHeader: withHeader.status,
        wrongHeader: wrongHeader.status,
      };
    });
    expect(answers).toMatchObject({ noHeader: 403, withHeader: 201, wrongHeader: 403 });
    expect(answers.noHeaderBody.error.code).toMatch(/CSRF/);
    await signOut(page);
  });

  it('serves /console with a strict CSP and nothing from another origin; first load stays within 250 KB of compressed JS and CSS', async () => {
    const page = await browser.newPage();
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    const violations: string[] = [];
    page.on('console', (m) => m.text().includes('Content Security Policy') && violations.push(m.text()));
    const response = await page.goto(`${server.url}/console`);
    await page.getByLabel('API token').waitFor();
    const csp = response!.headers()['content-security-policy'];
    expect(csp).toMatch(/default-src 'none'|default-src 'self'/);
    expect(csp).toMatch(/script-src 'self'/);
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    expect(requests.every((url) => url.startsWith(server.url))).toBe(true);
    expect(violations).toEqual([]);
    let compressed = 0;
    for (const url of requests.filter((u) => /\.(js|css)$/.test(u))) {
      const asset = await fetch(url, { headers: { 'accept-encoding': 'br, gzip' } });
      expect(asset.headers.get('content-encoding')).toMatch(/^(br|gzip)$/);
      compressed += (await asset.arrayBuffer()).byteLength;
    }
    expect(compressed).toBeGreaterThan(0);
    expect(compressed).toBeLessThanOrEqual(250 * 1024);
    await page.close();
  });

  it('lets each role see and do only what the API allows', async () => {
    // A signer's token makes no console session: pipelines sign, people read.
    const signer = await signIn(tokens.signer);
    await signer.getByRole('alert').waitFor();
    expect(await signer.getByRole('alert').textContent()).toMatch(/signer token gets no session/);
    await signer.close();

    const auditor = await signIn(tokens.auditor);
    await auditor.getByTestId('role').filter({ hasText: 'auditor' }).waitFor();
    await open(auditor, 'revoke');
    await auditor.getByLabel('Find by').selectOption('key');
    await auditor.getByLabel('Value').fill('release');
    await auditor.getByRole('button', { name: 'Search' }).click();
    await auditor.getByTestId('certificates').waitFor();
    expect(await auditor.getByRole('button', { name: /Revoke/ }).count()).toBe(0);
    await auditor.getByText('your role may not revoke').first().waitFor();
    await open(auditor, 'fleet');
    expect(await auditor.getByRole('button', { name: 'Reconcile now' }).count()).toBe(0);
    // The server is the authority: the auditor's session cannot revoke even when the page is bypassed.
    const forbidden = await auditor.evaluate(async () => {
      const session = (await (await fetch('/v1/sessions/current')).json()) as { csrfToken: string };
      const serial = (
        (await (await fetch('/v1/certificates?key=release')).json()) as { certificates: Array<{ serial: string }> }
      ).certificates[0].serial;
      const answer = await fetch(`/v1/certificates/${serial}/revoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrfToken },
        body: JSON.stringify({ reason: 'keyCompromise' }),
      });
      return answer.status;
    });
    expect(forbidden).toBe(403);
    await signOut(auditor);

    const officer = await signIn(tokens['security-officer']);
    await officer.getByTestId('role').filter({ hasText: 'security-officer' }).waitFor();
    await open(officer, 'fleet');
    await officer.getByRole('button', { name: 'Reconcile now' }).waitFor();
    await signOut(officer);
  });

  it('every view passes an axe-core scan with no serious or critical violation, and works from the keyboard', async () => {
    const page = await signIn(admin);
    await page.getByTestId('role').waitFor();
    for (const view of VIEWS) {
      await open(page, view);
      await screenshot(page, `view-${view}`);
      expect({ view, violations: await seriousAxeViolations(page) }).toEqual({ view, violations: [] });
    }
    // Keyboard only: tab to the Fleet link, press Enter, and focus lands on the view's heading.
    await open(page, 'overview');
    let focused = '';
    for (let i = 0; i < 15 && focused !== 'Fleet'; i++) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate<string>("document.activeElement?.textContent ?? ''");
    }
    expect(focused).toBe('Fleet');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Fleet' }).waitFor();
    expect(await page.evaluate<string>('document.activeElement?.tagName')).toBe('H1');
    // 200 % zoom: the page reflows instead of needing a sideways scroll.
    await page.setViewportSize({ width: 640, height: 450 });
    await page.evaluate('window.scrollTo(0, 0)');
    expect(await page.evaluate<boolean>('document.documentElement.scrollWidth <= window.innerWidth + 1')).toBe(true);
    await screenshot(page, 'fleet-narrow');
    await page.setViewportSize({ width: 1280, height: 900 });
    await signOut(page);
  });

  it('turns the fleet grid red when the docker-registry stops and green when it is back, live over server-sent events', async () => {
    const page = await signIn(admin);
    await page.getByTestId('role').waitFor();
    await open(page, 'fleet');
    const row = page.locator('tr[data-target="eu/registry"]');
    await row.and(page.locator('[data-state="converged"]')).waitFor(WAIT);
    await page.getByTestId('fleet-live').filter({ hasText: 'Live' }).waitFor(WAIT);
    await registry.stop();
    try {
      // A new truststore version (a new root) must be pushed while the registry is down.
      await created('POST', '/v1/cas', {
        name: 'console-root',
        kind: 'root',
        keySpec: 'EC-256',
        subject: { ...SUBJECT, CN: 'Console Root' },
      });
      await created('PATCH', '/v1/truststores/production', { cas: ['signet-dev-root', 'console-root'] });
      // While the registry is down the row moves between retrying and pending, so the state and
      // its colour are read in one evaluation: two reads could straddle a change of state.
      type Row = { getAttribute(name: string): string | null };
      type Dom = {
        document: { querySelector(selector: string): Row | null };
        getComputedStyle(el: Row): { backgroundColor: string };
      };
      const red = await page.waitForFunction(
        () => {
          const dom = globalThis as unknown as Dom;
          const el = dom.document.querySelector('tr[data-target="eu/registry"]');
          const state = el?.getAttribute('data-state');
          return el && (state === 'retrying' || state === 'blocked')
            ? { state, background: dom.getComputedStyle(el).backgroundColor }
            : undefined;
        },
        undefined,
        WAIT,
      );
      expect(((await red.jsonValue()) as { background: string }).background).toBe('rgb(253, 226, 225)');
      await screenshot(page, 'fleet-red');
    } finally {
      await registry.startProcess();
    }
    await row.and(page.locator('[data-state="converged"]')).waitFor(WAIT);
    await screenshot(page, 'fleet-green');
    await signOut(page);
  });

  it('revokes a certificate end to end: the page says revoked everywhere and openssl ocsp agrees', async () => {
    const key = (await created('POST', '/v1/keys', {
      name: 'compromised',
      keySpec: 'EC-256',
      subject: { ...SUBJECT, CN: 'compromised' },
    })) as { versions: Array<{ serial: string; issuerGeneration: string }> };
    const { serial, issuerGeneration } = key.versions[0];
    const page = await signIn(tokens['security-officer']);
    await page.getByTestId('role').waitFor();
    await open(page, 'revoke');
    await page.getByLabel('Find by').selectOption('serial');
    await page.getByLabel('Value').fill(serial);
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('button', { name: `Revoke ${serial}…` }).click();
    await page.getByLabel('Reason').selectOption('keyCompromise');
    const revoke = page.getByRole('button', { name: 'Revoke certificate' });
    expect(await revoke.isDisabled()).toBe(true);
    await page.getByLabel(/Type the serial/).fill(serial.slice(0, -1));
    expect(await revoke.isDisabled()).toBe(true);
    await page.getByLabel(/Type the serial/).fill(serial);
    await revoke.click();
    await page.getByTestId('revocation-summary').filter({ hasText: 'Revoked everywhere' }).waitFor(WAIT);
    for (const step of ['signing', 'ocsp', 'crl', 'region-eu'])
      expect(await page.getByTestId(`step-${step}`).getAttribute('class')).toBe('done');
    await screenshot(page, 'revoked');

    // openssl, independently: the issuer's OCSP responder says revoked, with the reason.
    const work = tempDir('console-ocsp-');
    // Version 1's chain: revoking the active version started an emergency rotation to version 2.
    const chain = (await api('GET', '/v1/keys/compromised/certificate-chain?version=1')).raw.toString();
    const pems = chain.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!;
    fs.writeFileSync(path.join(work, 'leaf.pem'), pems[0]);
    fs.writeFileSync(path.join(work, 'issuer.pem'), pems[1]);
    fs.writeFileSync(path.join(work, 'root.pem'), pems[pems.length - 1]);
    const ocsp = openssl(
      [
        'ocsp',
        '-issuer',
        'issuer.pem',
        '-cert',
        'leaf.pem',
        '-url',
        `${server.url}/ocsp/${issuerGeneration}`,
        '-CAfile',
        'root.pem',
        '-no_nonce',
      ],
      work,
    );
    expect(ocsp.out).toMatch(/leaf\.pem: revoked/);
    expect(ocsp.out).toMatch(/Reason: keyCompromise/);
    await signOut(page);
  });

  it('finds a signature in the audit log by the artifact it signed', async () => {
    const artifact = `sha256:${'ab'.repeat(32)}`;
    const digest = Buffer.alloc(32, 7).toString('base64');
    const signed = await api(
      'POST',
      '/v1/keys/release/sign',
      { digest, hashAlgorithm: 'SHA-256', artifact: { digest: artifact } },
      tokens.signer,
    );
    expect(signed.status).toBe(200);
    const page = await signIn(tokens.auditor);
    await page.getByTestId('role').waitFor();
    await open(page, 'audit');
    await page.getByLabel('Artifact digest').fill(artifact);
    await page.getByRole('button', { name: 'Apply filter' }).click();
    const rows = page.getByTestId('audit-events').locator('tbody tr');
    // The view shows the unfiltered events until the filtered answer arrives: wait for that answer
    // (one row naming the artifact) rather than for any first row, which the old list satisfied.
    type Dom = { document: { querySelectorAll(selector: string): ArrayLike<{ textContent: string | null }> } };
    await page.waitForFunction((digest) => {
      const found = (globalThis as unknown as Dom).document.querySelectorAll('[data-testid="audit-events"] tbody tr');
      return found.length === 1 && (found[0].textContent ?? '').includes(digest);
    }, artifact);
    expect(await rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain(artifact);
    expect(await rows.first().textContent()).toContain('console-signer');
    await page.getByLabel('Artifact digest').fill(`sha256:${'cd'.repeat(32)}`);
    await page.getByRole('button', { name: 'Apply filter' }).click();
    await page.getByText('No audit event matches.').waitFor();
    await screenshot(page, 'audit-filtered');
    await signOut(page);
  });
});
