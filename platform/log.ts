// The logger of `pairpref serve`: pino, writing to stderr (stdout stays free; process.stderr writes
// synchronously on Linux, so no line is lost when the process exits right after it), in one of two formats:
//
//   json    one JSON object per line: {"level":"info","time":"<ISO 8601>","pid":..,"hostname":..,"msg":..,
//           plus the line's fields (request_id, method, code, trace_id, ...)}
//   pretty  the plain line core/log.ts's createLogger writes: `<ISO 8601> LEVEL msg key=value ...`
//
// It is shaped like core/log.ts's Logger (message, optional fields, child with bound fields); this
// folder imports nothing of ours, so cli/serve.ts is where the two are checked to match.
import { pino, stdTimeFunctions, type DestinationStream, type Logger as PinoLogger } from 'pino';

export type LogFormat = 'json' | 'pretty';
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];
export type ProcessLogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Readonly<Record<string, string | number | boolean>>;

export interface FieldLogger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(fields: Fields): FieldLogger;
}

export interface ProcessLoggerOptions {
  readonly level: ProcessLogLevel;
  readonly format: LogFormat;
  /** Where lines go; default: process.stderr (synchronous for files, pipes and terminals on Linux). */
  readonly write?: (line: string) => void;
}

/** Keys pino puts on every line; the rest of a line's object are its fields. */
const OWN_KEYS = new Set(['level', 'time', 'pid', 'hostname', 'msg']);

/** `key=value` the way core/log.ts formats fields (strings with spaces, quotes or `=` JSON-quoted). */
function plainFields(o: Record<string, unknown>): string {
  let out = '';
  for (const [k, v] of Object.entries(o)) {
    if (OWN_KEYS.has(k)) continue;
    const s = typeof v === 'string' ? v : JSON.stringify(v);
    out += ` ${k}=${typeof v === 'string' && (s === '' || /[\s"=]/.test(s)) ? JSON.stringify(s) : s}`;
  }
  return out;
}

/** pino's JSON line -> the plain line (`2026-01-02T03:04:05.678Z INFO  msg key=value`). */
export function plainLine(json: string): string {
  const o = JSON.parse(json) as Record<string, unknown>;
  const level = String(o['level']).toUpperCase().padEnd(5);
  return `${String(o['time'])} ${level} ${String(o['msg'] ?? '')}${plainFields(o)}\n`;
}

function wrap(p: PinoLogger): FieldLogger {
  const at = (lvl: ProcessLogLevel) => (msg: string, fields?: Fields) => (fields ? p[lvl](fields, msg) : p[lvl](msg));
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (fields) => wrap(p.child(fields)) };
}

export function createProcessLogger(o: ProcessLoggerOptions): FieldLogger {
  const write = o.write ?? ((line: string) => void process.stderr.write(line));
  const destination: DestinationStream = { write: o.format === 'json' ? write : (line) => write(plainLine(line)) };
  return wrap(
    pino(
      {
        level: o.level,
        timestamp: stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
      },
      destination,
    ),
  );
}
