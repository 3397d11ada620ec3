// The native tokenizer for Node: Hugging Face's Rust `tokenizers` through its napi binding, as
// core's BatchTokenizer (core/tokenizing.ts). The browser keeps core's pure-JS one
// (@huggingface/tokenizers, core/tokenizer.ts); both read the same tokenizer.json and give the same
// ids (test/core/tokenizer-parity.test.ts, training/tokenizer-parity.ts).
//
// This module is the runtime's tokenizer plug-in: `nodeRuntime.tokenizerModule` names it by URL, and
// the engine's tokenizer workers import it by that URL (functions cannot be sent to a thread), so
// it exports `createBatchTokenizer` with the signature core's `TokenizerModule` describes.
//
// The binding only offers `encode`/`encodeBatch`, both returning Promises: each call is a task on
// libuv's thread pool, which runs the Rust encoder off the calling thread. A lone surrogate reaches
// it through napi's UTF-8 conversion as U+FFFD, as it reaches the JS library through TextEncoder.
import { createRequire } from 'node:module';
import type { BatchTokenizer } from '../../core/tokenizing.ts';

interface NativeEncoding {
  getIds(): number[];
}
interface NativeTokenizer {
  encodeBatch(texts: string[], opts: { addSpecialTokens: boolean }): Promise<NativeEncoding[]>;
}
interface NativeBinding {
  readonly Tokenizer: { fromString(json: string): NativeTokenizer };
}

type Loaded = { readonly ok: true; readonly binding: NativeBinding; readonly library: string } | { readonly ok: false; readonly reason: string };

let loaded: Loaded | undefined;

/** Loads the binding once; says why not when this platform has no usable build of it. */
export function loadNativeTokenizers(): Loaded {
  if (loaded) return loaded;
  try {
    const require = createRequire(import.meta.url);
    const binding = require('tokenizers') as Partial<NativeBinding>;
    if (typeof binding.Tokenizer?.fromString !== 'function') throw new Error('the package has no Tokenizer.fromString');
    const { version } = require('tokenizers/package.json') as { version: string };
    loaded = { ok: true, binding: binding as NativeBinding, library: `tokenizers ${version} (native)` };
  } catch (e) {
    loaded = { ok: false, reason: (e instanceof Error ? e.message : String(e)).split('\n')[0]! };
  }
  return loaded;
}

/**
 * tokenizer.json as the native binding's tokenizer. tokenizer_config.json is not read: it only
 * sets special-token options, and core never lets a tokenizer add special tokens.
 * Throws when the binding cannot load or cannot read the tokenizer.
 */
export function createBatchTokenizer(tokenizerJson: unknown, _tokenizerConfig?: unknown): BatchTokenizer {
  const native = loadNativeTokenizers();
  if (!native.ok) throw new Error(`the native tokenizer binding (tokenizers) cannot load: ${native.reason}`);
  if (typeof tokenizerJson !== 'object' || tokenizerJson === null || !('model' in tokenizerJson)) {
    throw new Error('tokenizer.json: not a Hugging Face tokenizer (no "model" key)');
  }
  const tok = native.binding.Tokenizer.fromString(JSON.stringify(tokenizerJson));
  const opts = { addSpecialTokens: false };
  return {
    library: native.library,
    // One call per round: a chunk's texts cross to the native side together. Encodings come back
    // in order; getIds copies each one's ids into a JS array.
    encodeBatch: async (texts) => (await tok.encodeBatch([...texts], opts)).map((e) => e.getIds()),
  };
}
