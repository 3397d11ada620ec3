// The in-process reference: one onnxruntime-node session in this thread, one row at a time,
// no scheduler, no padding, no workers. Integration tests compare the server against it.
import * as ort from 'onnxruntime-node';
import { padBatch } from '../../core/batch.ts';
import { probsFromLabelTokens, probsFromSeqCls, type Probs } from '../../core/postprocess.ts';
import type { Comparison } from '../../core/types.ts';
import { loadBundle } from '../../runtime/node/index.ts';

export interface Reference {
  score(row: Comparison): Promise<Probs>;
  release(): Promise<void>;
}

export async function referenceFor(bundleDir: string, providers: string[] = ['cpu']): Promise<Reference> {
  const bundle = loadBundle(bundleDir);
  const session = await ort.InferenceSession.create(bundle.modelPath, { executionProviders: providers });
  const cfg = bundle.config;
  return {
    async score(row) {
      const enc = bundle.preprocessor.encode(row);
      const b = padBatch([enc], cfg.special_tokens);
      const dims = [1, b.seqLen];
      const feeds: Record<string, ort.Tensor> = { [cfg.inputs.input_ids]: new ort.Tensor('int64', b.inputIds, dims) };
      if (cfg.inputs.attention_mask) feeds[cfg.inputs.attention_mask] = new ort.Tensor('int64', b.attentionMask, dims);
      if (cfg.features && b.features) feeds[cfg.features.input] = new ort.Tensor('float32', b.features, [1, b.numFeatures]);
      const out = (await session.run(feeds))[cfg.head.output]!;
      const data = out.data as Float32Array;
      const probs = cfg.head.kind === 'seq-cls' ? probsFromSeqCls(data, 1) : probsFromLabelTokens(data, out.dims, b.lastIndex, cfg.head.token_ids);
      return probs[0]!;
    },
    release: () => session.release(),
  };
}
