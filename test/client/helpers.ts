// Shared setup for client and CLI tests: the tiny fixture bundle in a temp dir and real servers
// on ephemeral loopback ports.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
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

/**
 * The usual setup of a test file: a temp dir with the fixture bundle, and one fixture server started
 * before the file's tests and closed (with the temp dir) after them.
 */
export function fixtureServerForFile(): { readonly tmp: ReturnType<typeof tempDir>; readonly bundle: string; readonly server: RunningServer; readonly started: Promise<RunningServer> } {
  const tmp = tempDir();
  const bundle = fixtureBundle(tmp.dir);
  let running: RunningServer | null = null;
  let up: (s: RunningServer) => void = () => undefined;
  // node:test does not wait for one root-level before() before starting the next: a file's own
  // before() that needs the server awaits `started`.
  const started = new Promise<RunningServer>((r) => (up = r));
  before(async () => {
    running = await startFixtureServer(bundle);
    up(running);
  });
  after(async () => {
    await running?.close();
    tmp.cleanup();
  });
  return {
    tmp,
    bundle,
    started,
    get server(): RunningServer {
      if (!running) throw new Error('the fixture server starts in before(): use it inside a test');
      return running;
    },
  };
}

export const REPO_ROOT = new URL('../../', import.meta.url).pathname;
export const SHARED_DATA = join(REPO_ROOT, '..', 'shared', 'data');
