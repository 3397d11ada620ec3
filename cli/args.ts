// Shared flag parsers: a bad value is a clear usage error, not a NaN deep inside.
import { InvalidArgumentError } from 'commander';

export function intArg(flag: string, min: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${flag} must be an integer >= ${min} (got "${value}")`);
    return n;
  };
}
