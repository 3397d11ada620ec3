// Vite config of the browser demo. The page fetches its model bundle from ./model/ and the
// onnxruntime-web wasm files from ./ort/: the dev server serves both straight from disk, the
// production build copies them into web/dist so it runs offline from any static server.
import { copyFileSync, createReadStream, existsSync, mkdirSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type InlineConfig, type Plugin } from 'vite';

export const WEB_ROOT = fileURLToPath(new URL('.', import.meta.url));
export const REPO_ROOT = resolve(WEB_ROOT, '..');
export const DEFAULT_MODEL_DIR = join(REPO_ROOT, 'models', 'default');
const ORT_DIST = join(REPO_ROOT, 'node_modules', 'onnxruntime-web', 'dist');

/** The bundle files the page reads (tokenizer_config.json is optional). */
export const MODEL_FILES = ['model.onnx', 'tokenizer.json', 'preference.json', 'tokenizer_config.json'] as const;
/** onnxruntime-web/webgpu runs on the asyncify build for both its webgpu and wasm providers. */
export const ORT_FILES = ['ort-wasm-simd-threaded.asyncify.wasm', 'ort-wasm-simd-threaded.asyncify.mjs'] as const;

const TYPES: Readonly<Record<string, string>> = {
  '.json': 'application/json',
  '.onnx': 'application/octet-stream',
  '.wasm': 'application/wasm',
  '.mjs': 'text/javascript',
};

function contentType(name: string): string {
  return TYPES[name.slice(name.lastIndexOf('.'))] ?? 'application/octet-stream';
}

type Next = (err?: unknown) => void;

/** Serves `files` of `dir` under `prefix`; anything else under the prefix is a 404 with a reason. */
function serveFiles(prefix: string, dir: string, files: readonly string[]) {
  return (req: IncomingMessage, res: ServerResponse, next: Next): void => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (!path.startsWith(prefix)) return next();
    const name = decodeURIComponent(path.slice(prefix.length));
    const file = join(dir, name);
    if (!files.includes(name) || !existsSync(file)) {
      res.statusCode = 404;
      res.setHeader('content-type', 'text/plain');
      res.end(`${name} is not in ${dir}`);
      return;
    }
    res.setHeader('content-type', contentType(name));
    res.setHeader('content-length', String(statSync(file).size));
    res.setHeader('cache-control', 'no-cache');
    createReadStream(file).pipe(res);
  };
}

function copyInto(outDir: string, sub: string, dir: string, files: readonly string[], required: readonly string[]): void {
  mkdirSync(join(outDir, sub), { recursive: true });
  for (const f of files) {
    const src = join(dir, f);
    if (existsSync(src)) copyFileSync(src, join(outDir, sub, f));
    else if (required.includes(f)) throw new Error(`web build: ${src} is missing (set PAIRPREF_WEB_MODEL_DIR to a model bundle)`);
  }
}

function bundleFiles(modelDir: string): Plugin {
  let outDir = '';
  return {
    name: 'pairpref-bundle-files',
    configResolved(cfg) {
      outDir = resolve(cfg.root, cfg.build.outDir);
    },
    configureServer(server) {
      if (!existsSync(join(modelDir, 'model.onnx'))) {
        server.config.logger.warn(`pairpref: ${modelDir} has no model.onnx; the page will say it cannot load the model (set PAIRPREF_WEB_MODEL_DIR)`);
      }
      server.middlewares.use(serveFiles('/model/', modelDir, MODEL_FILES));
      server.middlewares.use(serveFiles('/ort/', ORT_DIST, ORT_FILES));
    },
    closeBundle() {
      copyInto(outDir, 'model', modelDir, MODEL_FILES, ['model.onnx', 'tokenizer.json', 'preference.json']);
      copyInto(outDir, 'ort', ORT_DIST, ORT_FILES, ORT_FILES);
    },
  };
}

export interface WebConfigOptions {
  /** Model bundle served as ./model/ (default: PAIRPREF_WEB_MODEL_DIR, else models/default). */
  readonly modelDir?: string;
  /** Production build output (default web/dist). */
  readonly outDir?: string;
}

export function pairprefWebConfig(opts: WebConfigOptions = {}): InlineConfig {
  const modelDir = resolve(opts.modelDir ?? process.env['PAIRPREF_WEB_MODEL_DIR'] ?? DEFAULT_MODEL_DIR);
  return {
    root: WEB_ROOT,
    base: './', // relative URLs: the build works from any path of any static server
    configFile: false,
    appType: 'mpa', // a missing file is a 404, not index.html (the page probes tokenizer_config.json)
    clearScreen: false,
    plugins: [bundleFiles(modelDir)],
    // The page imports core/ from the repository root.
    server: { host: '127.0.0.1', fs: { allow: [REPO_ROOT] } },
    preview: { host: '127.0.0.1' },
    resolve: {
      // The non-bundle build loads its wasm glue and binary from ort.env.wasm.wasmPaths (./ort/) only;
      // the default bundle build also references the 27 MB wasm by `new URL`, which Vite would emit twice.
      alias: [{ find: /^onnxruntime-web\/webgpu$/, replacement: join(ORT_DIST, 'ort.webgpu.min.mjs') }],
    },
    // Pre-bundling would move onnxruntime-web away from the files it locates at run time.
    optimizeDeps: { exclude: ['onnxruntime-web'] },
    build: {
      outDir: opts.outDir ?? join(WEB_ROOT, 'dist'),
      emptyOutDir: true,
      target: 'es2022',
      chunkSizeWarningLimit: 2048,
    },
  };
}

export default defineConfig(pairprefWebConfig());
