// core/feeds.ts with onnxruntime-node tensors: the server's device worker, the in-process bench and
// training's evaluation feed batches through here.
import * as ort from 'onnxruntime-node';
import { batchFeeds, inputNames, type FeedBatch, type InputNames, type TensorMaker } from '../../core/feeds.ts';

export { inputNames, type FeedBatch, type InputNames };

const NODE_TENSORS: TensorMaker<ort.Tensor> = {
  int64: (data: BigInt64Array, dims: readonly number[]) => new ort.Tensor('int64', data, dims),
  float32: (data: Float32Array, dims: readonly number[]) => new ort.Tensor('float32', data, dims),
};

export function ortFeeds(b: FeedBatch, names: InputNames): Record<string, ort.Tensor> {
  return batchFeeds(b, names, NODE_TENSORS);
}
