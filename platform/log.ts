// The JSON logger of `pairpref serve --log-format json`: pino, writing one object per line to stderr
// (stdout stays free; process.stderr writes synchronously on Linux, so no line is lost when the
// process exits right after it): {"level":"info","time":"<ISO 8601>","pid":..,"hostname":..,"msg":..,
// plus the line's fields (request_id, method, code, trace_id, ...)}. The default plain lines are
// core/log.ts's createLogger's own.
//
// It is shaped like core/log.ts's Logger (message, optional fields, child with bound fields); this
// folder imports nothing of ours, so cli/serve.ts is where the two are checked to match.
import { pino, stdTimeFunctions, type DestinationStream, type Logger as PinoLogger } from 'pino';

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
  /** Where lines go; default: process.stderr (synchronous for files, pipes and terminals on Linux). */
  readonly write?: (line: string) => void;
}

function wrap(p: PinoLogger): FieldLogger {
  const at = (lvl: ProcessLogLevel) => (msg: string, fields?: Fields) => (fields ? p[lvl](fields, msg) : p[lvl](msg));
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (fields) => wrap(p.child(fields)) };
}

/** One JSON object per line. */
export function createProcessLogger(o: ProcessLoggerOptions): FieldLogger {
  const write = o.write ?? ((line: string) => void process.stderr.write(line));
  const destination: DestinationStream = { write };
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
