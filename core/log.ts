// Leveled logger. Lines go to `write` (the CLI passes stderr, so stdout stays free for command
// output such as `eval --json`); the default is console.error, which works in Node and browsers.
// `pairpref serve --log-format json` uses a pino-backed Logger instead (platform/log.ts); `pretty` is this one.
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** Structured fields of a log line (a call's request id, its method, ...). */
export type LogFields = Readonly<Record<string, string | number | boolean>>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds these fields to every line it writes. */
  child?(fields: LogFields): Logger;
}

/** `key=value` pairs as this logger's plain lines show them (values with spaces or quotes are JSON-quoted). */
export function formatFields(fields: LogFields | undefined): string {
  if (!fields) return '';
  let out = '';
  for (const [k, v] of Object.entries(fields)) {
    const s = String(v);
    out += ` ${k}=${typeof v === 'string' && (s === '' || /[\s"=]/.test(s)) ? JSON.stringify(s) : s}`;
  }
  return out;
}

export function createLogger(level: LogLevel = 'info', write: (line: string) => void = (l) => console.error(l.trimEnd()), bound: LogFields = {}): Logger {
  const at = (lvl: Exclude<LogLevel, 'silent'>) => (msg: string, fields?: LogFields) => {
    if (ORDER[lvl] >= ORDER[level]) write(`${new Date().toISOString()} ${lvl.toUpperCase().padEnd(5)} ${msg}${formatFields({ ...bound, ...fields })}\n`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (fields) => createLogger(level, write, { ...bound, ...fields }) };
}

/** `log` with these fields on every line: its own child() when it has one, else a wrapper that passes them. */
export function withFields(log: Logger, fields: LogFields): Logger {
  if (log.child) return log.child(fields);
  const at = (f: (msg: string, fields?: LogFields) => void) => (msg: string, more?: LogFields) => f.call(log, msg, { ...fields, ...more });
  return { debug: at(log.debug), info: at(log.info), warn: at(log.warn), error: at(log.error), child: (more) => withFields(log, { ...fields, ...more }) };
}

export const silentLogger: Logger = createLogger('silent');
