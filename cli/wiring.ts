// Where the product is put together: onnxruntime-node (runtime/node) wired into the engine, and
// the engine into the gRPC server or the in-process client. The engine and the server never
// import a runtime themselves; the bench and tests use these same functions.
import { localClient, type LocalClient } from '../engine/local.ts';
import { loadScorer, type Scorer, type ScorerOptions } from '../engine/scorer.ts';
import { loadBundle, nodeRuntime } from '../runtime/node/index.ts';
import { startServer, type RunningServer, type ServeOptions } from '../server/server.ts';

export interface NodeScorerOptions extends Omit<ScorerOptions, 'runtime' | 'bundle'> {
  /** Model bundle directory (model.onnx, tokenizer.json, preference.json). */
  readonly modelDir: string;
}

/** The engine on onnxruntime-node for a bundle directory. */
export function loadNodeScorer(opts: NodeScorerOptions): Promise<Scorer> {
  return loadScorer({ ...opts, runtime: nodeRuntime, bundle: loadBundle(opts.modelDir) });
}

/** `pairpref serve`: the gRPC server over the engine on onnxruntime-node. */
export function serveModel(opts: Omit<ServeOptions, 'load'> & NodeScorerOptions): Promise<RunningServer> {
  return startServer({ ...opts, load: () => loadNodeScorer(opts) });
}

/** The CLI's --model mode: the engine in this process behind the SDK's stream shape. */
export async function openLocal(opts: NodeScorerOptions): Promise<LocalClient> {
  return localClient(await loadNodeScorer(opts));
}
