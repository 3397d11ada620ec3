// A promise-friendly wrapper over the generated client for integration tests.
import { credentials, type ClientDuplexStream } from '@grpc/grpc-js';
import {
  PairwisePreferenceClient,
  type Comparison,
  type ModelInfo,
  type Prediction,
  type ScoreStreamRequest,
} from '../../proto/gen/pairpref/v1/preference.ts';

export interface TestClient {
  score(comparisons: Comparison[], swapTta?: boolean): Promise<Prediction[]>;
  scoreStream(comparisons: Comparison[], swapTta?: boolean): Promise<Prediction[]>;
  modelInfo(): Promise<ModelInfo>;
  close(): void;
}

export function wire(c: Partial<Comparison> & { id: string }): Comparison {
  return { prompt: [], responseA: [], responseB: [], raw: undefined, ...c };
}

export function testClient(address: string): TestClient {
  const client = new PairwisePreferenceClient(address, credentials.createInsecure());
  return {
    score: (comparisons, swapTta = false) =>
      new Promise((resolve, reject) =>
        client.score({ comparisons, options: { swapTta } }, (err, res) => (err ? reject(err) : resolve(res.predictions))),
      ),
    scoreStream: (comparisons, swapTta = false) =>
      new Promise((resolve, reject) => {
        const out: Prediction[] = [];
        const call: ClientDuplexStream<ScoreStreamRequest, Prediction> = client.scoreStream();
        call.on('data', (p: Prediction) => out.push(p));
        call.on('error', reject);
        call.on('end', () => resolve(out));
        for (const c of comparisons) call.write({ comparison: c, options: { swapTta } });
        call.end();
      }),
    modelInfo: () => new Promise((resolve, reject) => client.getModelInfo({}, (err, res) => (err ? reject(err) : resolve(res)))),
    close: () => client.close(),
  };
}
