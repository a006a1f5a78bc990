// Command-line glue the harness's tools share: the error that means "wrong invocation", numeric
// options, and the `require.main` block of a tool that starts stacks (parse the options, stop the
// stack on Ctrl-C or a crash, map the outcome to an exit status), written once here instead of
// once per tool.

import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A wrong invocation: the tool prints the message (none for --help) and its usage. */
export class UsageError extends Error {}

/** node:util's parseArgs, with what it refuses (an unknown option, a missing value) as a UsageError. */
export function parseToolArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** A numeric option: its fallback when absent, else a finite number >= min (an integer if asked). */
export function numberOption(name: string, raw: string | undefined, fallback: number, min: number, integer: boolean): number {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${raw}`);
  return v;
}

export interface CliTool<O> {
  /** prefixes the error line of a crash */
  name: string;
  usage: string;
  /** throws UsageError on a wrong invocation, UsageError('') for --help */
  parse: (argv: string[]) => O;
  /** resolves with the exit status */
  run: (options: O) => Promise<number>;
  /** stops what the tool started (its stack), on SIGINT/SIGTERM and when run() rejects */
  cleanup?: () => void;
  /** exit status when run() rejects (default 2: "could not run") */
  crashStatus?: number;
}

/**
 * Runs a tool as the main module. Exit status: run()'s; 2 on a wrong invocation (0 for --help);
 * 130 on SIGINT or SIGTERM, after cleanup(); crashStatus when run() rejects.
 */
export function runCli<O>(tool: CliTool<O>): void {
  let options: O;
  try {
    options = tool.parse(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    if (err.message) console.error(err.message);
    (err.message ? console.error : console.log)(tool.usage);
    process.exit(err.message ? 2 : 0);
  }
  const stop = (signal: string): void => {
    console.error(`\n${signal}: stopping`);
    tool.cleanup?.();
    process.exit(130);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  tool
    .run(options)
    .then((status) => process.exit(status))
    .catch((err: Error) => {
      tool.cleanup?.();
      console.error(`${tool.name}: ${err instanceof UsageError ? err.message : err.stack ?? err.message}`);
      if (err instanceof UsageError) console.error(tool.usage);
      process.exit(err instanceof UsageError ? 2 : tool.crashStatus ?? 2);
    });
}
