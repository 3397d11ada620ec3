// Shared setup for client and CLI tests: the tiny fixture bundle in a temp dir and real servers
// on ephemeral loopback ports.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveModel } from '../../cli/wiring.ts';
import type { RunningServer } from '../../server/server.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'pairpref-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes the fixture bundle into dir/bundle and returns its path. */
export function fixtureBundle(dir: string): string {
  return writeFixtureBundle(join(dir, 'bundle')).dir;
}

export function startFixtureServer(modelDir: string, port = 0): Promise<RunningServer> {
  return serveModel({ modelDir, port, devices: 'cpu', intraOpThreads: 1 });
}

export const REPO_ROOT = new URL('../../', import.meta.url).pathname;
export const SHARED_DATA = join(REPO_ROOT, '..', 'shared', 'data');
