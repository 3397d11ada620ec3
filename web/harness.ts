// Drives the page for the browser tests and the web benchmark: builds and serves it with Vite, and
// launches Debian's chromium headless through playwright-core.
import { existsSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { build, createServer, preview } from 'vite';
import type { EngineInfo } from '../browser/page-engine.ts';
import { pairprefWebConfig } from './vite.config.ts';

export const CHROMIUM = '/usr/bin/chromium';
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
export interface WebServer {
  readonly url: string;
  close(): Promise<void>;
}

function urlOf(address: AddressInfo | string | null | undefined): string {
  if (!address || typeof address === 'string') throw new Error(`unexpected server address ${String(address)}`);
  return `http://127.0.0.1:${address.port}/`;
}

/** The production build (what `npm run web:build` makes) in outDir, served by `vite preview`. */
export async function buildAndPreview(modelDir: string, outDir: string): Promise<WebServer> {
  const cfg = pairprefWebConfig({ modelDir, outDir });
  await build({ ...cfg, logLevel: 'error' });
  const server = await preview({ ...cfg, logLevel: 'warn', preview: { host: '127.0.0.1', port: 0, strictPort: false, open: false } });
  return { url: urlOf(server.httpServer.address()), close: () => server.close() };
}

/** A port the OS just handed out (Vite's dev server reads port 0 as "the default, 5173"). */
async function freePort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** The dev server of `npm run web`. */
export async function startDev(modelDir: string): Promise<WebServer> {
  const cfg = pairprefWebConfig({ modelDir });
  const server = await createServer({ ...cfg, logLevel: 'warn', server: { ...cfg.server, port: await freePort(), strictPort: false, hmr: false, watch: null } });
  await server.listen();
  return { url: urlOf(server.httpServer?.address()), close: () => server.close() };
}

const BASE_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * `webgpu: true` adds --enable-unsafe-webgpu (enough here for Chromium's SwiftShader adapter,
 * with VK_ICD_FILENAMES pointing at its Vulkan driver). `webgpu: false` also removes
 * navigator.gpu before any page script runs: a browser without WebGPU.
 */
export async function launchBrowser(opts: { webgpu: boolean }): Promise<{ browser: Browser; context: BrowserContext }> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: opts.webgpu ? [...BASE_ARGS, '--enable-unsafe-webgpu'] : BASE_ARGS,
    env: { ...process.env, VK_ICD_FILENAMES: process.env['VK_ICD_FILENAMES'] ?? SWIFTSHADER_ICD },
  });
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  if (!opts.webgpu) {
    // A string, not a function: tsx's name helpers would not exist in the page.
    await context.addInitScript({ content: "Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });" });
  }
  // Offline: the page may only talk to the local server.
  await context.route('**/*', (route) => {
    const host = new URL(route.request().url()).hostname;
    return host === '127.0.0.1' || host === 'localhost' ? route.continue() : route.abort('internetdisconnected');
  });
  return { browser, context };
}

/** Opens the page, collects its errors, and waits for the model to load. */
export async function openPage(context: BrowserContext, url: string): Promise<{ page: Page; info: EngineInfo; errors: string[] }> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // The resource URL is not in a failed load's console text, so it is appended for the filter in the tests.
    if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location().url})`);
  });
  await page.goto(url);
  await page.waitForFunction(() => window.pairpref !== undefined, undefined, { timeout: 30_000 });
  const info = await page.evaluate(() => window.pairpref!.ready);
  return { page, info, errors };
}
