// Shared flag parsers: a bad value is a clear usage error, not a NaN deep inside.
import { InvalidArgumentError, Option } from 'commander';

export function intArg(flag: string, min: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${flag} must be an integer >= ${min} (got "${value}")`);
    return n;
  };
}

/** --tokenizer native|js (serve, and score/eval in-process): the native tokenizers binding (default) or the pure-JS one. */
export function tokenizerOption(): Option {
  return new Option('--tokenizer <library>', 'tokenizer library: native (the Rust tokenizers binding; falls back to js with a warning where it cannot load) or js (@huggingface/tokenizers, what the browser uses); same ids')
    .choices(['native', 'js'])
    .env('PAIRPREF_TOKENIZER')
    .default('native');
}
