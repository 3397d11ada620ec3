// Leveled logger. Lines go to `write` (the CLI passes stderr, so stdout stays free for command
// output such as `eval --json`); the default is console.error, which works in Node and browsers.
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export function createLogger(level: LogLevel = 'info', write: (line: string) => void = (l) => console.error(l.trimEnd())): Logger {
  const at = (lvl: Exclude<LogLevel, 'silent'>) => (msg: string) => {
    if (ORDER[lvl] >= ORDER[level]) write(`${new Date().toISOString()} ${lvl.toUpperCase().padEnd(5)} ${msg}\n`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export const silentLogger: Logger = createLogger('silent');
