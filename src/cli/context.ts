// What every API command needs: the client built from --url/--token (or
// VMAN_URL/VMAN_API_TOKEN) and whether to print JSON.
import type { Command } from 'commander';
import { ApiClient } from './client.ts';

export const DEFAULT_URL = 'http://127.0.0.1:8600';

export interface GlobalOptions {
  url?: string;
  token?: string;
  json?: boolean;
}

export interface Ctx {
  client: ApiClient;
  json: boolean;
}

export function ctxOf(cmd: Command): Ctx {
  const o = cmd.optsWithGlobals<GlobalOptions>();
  const url = o.url ?? (process.env.VMAN_URL || DEFAULT_URL);
  const token = o.token ?? (process.env.VMAN_API_TOKEN || undefined);
  return { client: new ApiClient({ url, token }), json: o.json === true };
}

/** A failure the command reports itself: the message goes to stderr, the code is the exit code. */
export class CliFailure extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'CliFailure';
  }
}

/** key: value lines for one object, for people. */
export function describe(fields: readonly [string, unknown][]): string {
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v === null || v === undefined || v === '' ? '-' : Array.isArray(v) ? v.join(', ') || '-' : String(v)}`).join('\n') + '\n';
}
