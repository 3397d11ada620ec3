// onnxruntime 1.30's own usage telemetry (a device id and a growing event database under
// ~/.cache/Microsoft/DeveloperTools/.onnxruntime) is off in pairpref unless the user turns it on.
// Each case opens a real session in a child process with its own HOME and looks at what was written.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OPEN_SESSION = `
const { createSession, loadBundle } = await import('./runtime/node/index.ts');
await createSession(loadBundle('models/default'), { name: 'cpu', provider: 'cpu', deviceId: 0 }, 1);
console.log('session open');
`;

const CI_VARIABLES = ['CI', 'TF_BUILD', 'GITHUB_ACTIONS', 'GITLAB_CI', 'CIRCLECI', 'TRAVIS', 'JENKINS_URL', 'CODEBUILD_BUILD_ID', 'BUILDKITE', 'TEAMCITY_VERSION', 'APPVEYOR', 'BITBUCKET_BUILD_NUMBER'];

/** Opens a session with HOME in a fresh folder; returns whether onnxruntime wrote its telemetry folder. */
function telemetryWritten(value: string | undefined): boolean {
  const home = mkdtempSync(join(tmpdir(), 'pairpref-home-'));
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, XDG_CACHE_HOME: join(home, '.cache') };
  delete env['ORT_DISABLE_TELEMETRY'];
  // onnxruntime turns its telemetry off by itself on CI machines (these variables are in its library), so the
  // child gets none of them: the case that asks for telemetry must see it written, wherever the test runs.
  for (const v of CI_VARIABLES) delete env[v];
  if (value !== undefined) env['ORT_DISABLE_TELEMETRY'] = value;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', OPEN_SESSION], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /session open/);
  return existsSync(join(home, '.cache', 'Microsoft', 'DeveloperTools', '.onnxruntime'));
}

test('onnxruntime telemetry is off by default and on only when ORT_DISABLE_TELEMETRY=0', () => {
  assert.equal(telemetryWritten(undefined), false, 'pairpref let onnxruntime write its telemetry folder');
  assert.equal(telemetryWritten('0'), true, 'with telemetry asked for, onnxruntime writes it (else this test proves nothing)');
});
