// Loading a bundle checks it against its ONNX graph; --devices fails early and clearly.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadNodeScorer } from '../../cli/wiring.ts';
import { loadBundle } from '../../runtime/node/index.ts';
import { CUDA_INSTALL_HINT, cudaProviderInstalled, resolveDevices } from '../../runtime/node/index.ts';
import { countVisibleCuda, probeCudaProvider } from '../../runtime/node/devices.ts';
import { writeFixtureBundle } from '../fixtures/fixture-bundle.ts';

function bundleWith(edit: (pref: Record<string, unknown>) => void, opts: Parameters<typeof writeFixtureBundle>[1] = {}): string {
  const dir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-')), opts).dir;
  const path = join(dir, 'preference.json');
  const pref = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  edit(pref);
  writeFileSync(path, JSON.stringify(pref));
  return dir;
}

describe('bundle validation against the ONNX graph', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['declares features the graph does not take', bundleWith((p) => (p.features = { input: 'features', names: ['a_log_chars', 'b_log_chars'] })), /features\.input "features" is not a graph input/],
    ['names an output the graph lacks', bundleWith((p) => (p.head = { kind: 'seq-cls', output: 'scores' })), /head\.output "scores" is not a graph output \(graph outputs: logits\)/],
    ['leaves a graph input unfed', bundleWith((p) => delete p.features, { numFeatures: 4 }), /graph input "features" .* is not declared in preference\.json/],
    ['uses label-token on a [batch, 3] output with token ids past it', bundleWith((p) => (p.head = { kind: 'label-token', output: 'logits', token_ids: [1, 2, 7] })), /head\.token_ids 7 are outside the output vocabulary of 3/],
    ['renames the ids input', bundleWith((p) => (p.inputs = { input_ids: 'ids', attention_mask: 'attention_mask' })), /inputs\.input_ids "ids" is not a graph input/],
  ];
  for (const [what, dir, message] of cases) {
    test(`a bundle that ${what} fails at load with a message saying so`, async () => {
      await assert.rejects(loadNodeScorer({ modelDir: dir, devices: 'cpu' }), (e: Error) => {
        assert.match(e.message, /model\.onnx does not match preference\.json/);
        assert.match(e.message, message);
        return true;
      });
    });
  }

  test('missing files and bad preference.json are named', () => {
    const dir = writeFixtureBundle(mkdtempSync(join(tmpdir(), 'pairpref-'))).dir;
    rmSync(join(dir, 'tokenizer.json'));
    assert.throws(() => loadBundle(dir), /has no tokenizer\.json/);
    assert.throws(() => loadBundle(join(dir, 'nope')), /does not exist/);
    const bad = bundleWith((p) => (p.truncation = { mode: 'middle', max_length: 64 }));
    assert.throws(() => loadBundle(bad), /truncation\.mode/);
  });
});

describe('--devices', () => {
  test('parses lists and names repeated CPU sessions apart', () => {
    assert.deepEqual(resolveDevices('cpu,cpu', { cudaInstalled: false }).devices.map((d) => d.name), ['cpu:0', 'cpu:1']);
    assert.deepEqual(resolveDevices('cuda:0,cuda:1', { cudaInstalled: true }).devices.map((d) => [d.provider, d.deviceId]), [['cuda', 0], ['cuda', 1]]);
    assert.deepEqual(resolveDevices('webgpu').devices.map((d) => d.provider), ['webgpu']);
    assert.throws(() => resolveDevices('tpu'), /unknown device "tpu"/);
    assert.throws(() => resolveDevices('cuda:0,cuda:0', { cudaInstalled: true }), /cuda:0 is listed twice/);
  });

  test('asking for CUDA without its provider fails with how to install it', () => {
    assert.throws(() => resolveDevices('cuda:0', { cudaInstalled: false }), (e: Error) => e.message === CUDA_INSTALL_HINT);
    assert.match(CUDA_INSTALL_HINT, /npm run install:cuda/);
  });

  test('CUDA_VISIBLE_DEVICES is read as CUDA reads it (up to the first invalid entry)', () => {
    assert.equal(countVisibleCuda(undefined, 2), 2);
    assert.equal(countVisibleCuda('-1', 2), 0);
    assert.equal(countVisibleCuda('', 2), 0);
    assert.equal(countVisibleCuda('none', 2), 0);
    assert.equal(countVisibleCuda('1', 2), 1);
    assert.equal(countVisibleCuda('0,1', 2), 2);
    assert.equal(countVisibleCuda('0,-1,1', 2), 1);
    assert.equal(countVisibleCuda('0,2', 2), 1);
    assert.equal(countVisibleCuda('GPU-8d3f0a4e-1111-2222-3333-444455556666', 1), 1);
    assert.equal(countVisibleCuda('0', 0), 0);
  });

  test('auto picks CUDA GPUs when the provider is installed and a test session runs, else the CPU, and says why', () => {
    const works = () => ({ ok: true });
    const gpu = resolveDevices('auto', { cudaInstalled: true, cudaCount: 2, probeCuda: works });
    assert.deepEqual(gpu.devices.map((d) => d.name), ['cuda:0', 'cuda:1']);
    assert.match(gpu.autoReason ?? '', /2 GPU/);
    const cpu = resolveDevices('auto', { cudaInstalled: false, cudaCount: 2, probeCuda: works });
    assert.deepEqual(cpu.devices.map((d) => d.name), ['cpu']);
    assert.match(cpu.autoReason ?? '', /CUDA provider not installed/);
    const hidden = resolveDevices('auto', { cudaInstalled: true, cudaCount: countVisibleCuda('-1', 2), probeCuda: works });
    assert.deepEqual(hidden.devices.map((d) => d.name), ['cpu']);
    assert.match(hidden.autoReason ?? '', /no GPU visible/);
  });

  test('auto falls back to the CPU, saying why, when the provider is present but its libraries are not', () => {
    let probed = 0;
    const broken = () => {
      probed++;
      return { ok: false, reason: 'Failed to load shared library: libcudnn.so.9: cannot open shared object file' };
    };
    const r = resolveDevices('auto', { cudaInstalled: true, cudaCount: 2, probeCuda: broken });
    assert.equal(probed, 1);
    assert.deepEqual(r.devices.map((d) => d.name), ['cpu']);
    assert.match(r.autoReason ?? '', /test session on cuda:0 failed \(.*libcudnn\.so\.9.*\): using the CPU/);
  });

  test('the CUDA probe runs a real session in a child process and reports why it failed', () => {
    if (cudaProviderInstalled()) {
      // Provider libraries present (npm run install:cuda, a GPU host): cuda:0 may well work, a GPU
      // that does not exist cannot, and the probe must say why instead of throwing.
      const r = probeCudaProvider(99);
      assert.equal(r.ok, false);
      assert.ok((r.reason ?? '').length > 0, 'the probe says why');
      return;
    }
    // No CUDA provider libraries: onnxruntime refuses the provider, and the probe must say so
    // instead of throwing or claiming success.
    const r = probeCudaProvider(0);
    assert.equal(r.ok, false);
    assert.match(r.reason ?? '', /Failed to load|providers_shared|providers_cuda|cannot open/);
  });

});
