// What runtime/web does with a bundle, run in Node on onnxruntime-web's wasm backend (the page itself
// is tested in Chromium by test/web): the served graph planned by core/graph-edit.ts (here the
// label-token gather) opened from bytes, with the external data files passed as onnxruntime-web's
// externalData option, gives the probabilities the server's onnxruntime-node sessions give, for the
// Hugging Face-shaped fixtures (float16 logits, one external file per tensor, a label-token LM with
// position_ids). onnxruntime-web's webgpu bundle does not load in Node; its plain bundle has the same
// graph runtime (the wasm build of onnxruntime).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import * as ortWeb from 'onnxruntime-web';
import { planServedGraph } from '../../core/graph-edit.ts';
import { byteSource, externalDataFiles, readOnnxModel } from '../../core/onnx-proto.ts';
import { runBatch, type OutputTensor, type SessionRun } from '../../core/run-batch.ts';
import { CPU, loadBundle, openSession, sessionOptions } from '../../runtime/node/index.ts';
import { readArena } from '../helpers/shared-data.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/hf/', import.meta.url));

for (const name of ['gemma-seq-cls', 'llama-seq-cls', 'label-token']) {
  test(`${name}: the served graph on onnxruntime-web (wasm, external data by path) equals onnxruntime-node`, async () => {
    const dir = join(FIXTURES, name);
    const bundle = loadBundle(dir);
    const model = new Uint8Array(readFileSync(bundle.modelPath));
    const plan = planServedGraph(byteSource(model), bundle.config);
    assert.equal(plan.bytes !== null, name === 'label-token', 'only the label-token head is edited');
    // As runtime/web passes them: the model's path and where onnxruntime-web loads the file from (a URL in the page, a path here).
    const externalData = externalDataFiles(readOnnxModel(byteSource(model)).graph).map((f) => ({ path: f.location, data: join(dir, f.location) }));
    assert.ok(externalData.length >= 1);
    const web = await ortWeb.InferenceSession.create(plan.bytes ?? model, { executionProviders: ['wasm'], externalData });
    const webRun: SessionRun<ortWeb.Tensor> = {
      tensors: { int64: (d, dims) => new ortWeb.Tensor('int64', d, dims), float32: (d, dims) => new ortWeb.Tensor('float32', d, dims) },
      graph: plan.served,
      async run(feeds, output): Promise<OutputTensor> {
        const t = (await web.run(feeds, [output]))[output]!;
        return { type: t.type, data: t.data, dims: t.dims };
      },
    };
    const node = await openSession(bundle.modelPath, sessionOptions(CPU, 1), bundle.config);
    const rows = (await readArena('alpaca-pairs-dev.csv.gz', 4)).map((r) => bundle.preprocessor.encode(r));
    rows.push(bundle.preprocessor.encode({ id: 's', kind: 'turns', prompt: ['hi'], response_a: ['a'], response_b: ['b'] }));
    for (const side of ['right', 'left'] as const) {
      const config = { ...bundle.config, special_tokens: { ...bundle.config.special_tokens, padding_side: side } };
      const got = await runBatch(webRun, config, rows);
      const want = await runBatch(node, config, rows);
      const diff = Math.max(...got.flatMap((p, i) => p.map((x, k) => Math.abs(x - want[i]![k]!))));
      assert.ok(diff <= 1e-5, `${name} ${side}: max |web - node| = ${diff}`);
    }
    await web.release();
    await node.release();
  });
}
