// The browser tests' side of the page harness (web/harness.ts): where artefacts go, and which
// bundle the page serves (models/default, or a tiny fixture bundle when it is absent).
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MODEL_DIR } from '../../web/vite.config.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';

export * from '../../web/harness.ts';

export const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url);

/** PAIRPREF_WEB_MODEL_DIR, else models/default once it is trained, else a tiny fixture bundle written to a temp dir. */
export function bundleForTests(): { dir: string; kind: 'PAIRPREF_WEB_MODEL_DIR' | 'models/default' | 'fixture' } {
  const fromEnv = process.env['PAIRPREF_WEB_MODEL_DIR'];
  if (fromEnv) return { dir: fromEnv, kind: 'PAIRPREF_WEB_MODEL_DIR' };
  if (existsSync(join(DEFAULT_MODEL_DIR, 'model.onnx'))) return { dir: DEFAULT_MODEL_DIR, kind: 'models/default' };
  return { dir: writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-web-bundle-'))).dir, kind: 'fixture' };
}
