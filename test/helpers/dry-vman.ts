// An isolated, in-process vman on the dry-run operator, for API unit tests:
// its own temporary storage folder, no port (requests go through
// `app.inject`), no observer loop, and a cleanup that closes every vman opened
// on the folder and removes it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import type { InjectOptions } from 'fastify';
import { loadConfig, type VmanConfig } from '../../src/config.ts';
import { DryRunOperator } from '../../src/operator/dry-run-operator.ts';
import { createVman, type Vman } from '../../src/server.ts';

/** A test context (`t`) or anything else with an `after` hook (`{ after }` from node:test). */
export interface HasAfter {
  after(fn: () => Promise<void>): void;
}

export interface ApiResponse<T = any> {
  status: number;
  /** The content-type header, e.g. `application/problem+json; charset=utf-8`. */
  type: string;
  /** Every header of the answer (allow, www-authenticate, content-length, ...). */
  headers: Record<string, string | string[] | undefined>;
  /** The parsed JSON body; undefined for an empty body. */
  body: T;
  raw: string;
}

export interface DryVman {
  dir: string;
  config: VmanConfig;
  vman: Vman;
  operator: DryRunOperator;
  /** An existing, absolute file usable as a template's kernel_path. */
  kernel: string;
  api<T = any>(method: InjectOptions['method'], url: string, payload?: InjectOptions['payload'], headers?: Record<string, string>): Promise<ApiResponse<T>>;
  /** Rows of a query run directly on the database. */
  rows(sql: string, ...params: unknown[]): unknown[];
  /** Opens another vman on the same storage folder (and, unless told otherwise, the same operator). */
  reopen(opts?: { operator?: DryRunOperator }): Promise<DryVman>;
  /** Closes every vman opened on the folder and removes it; idempotent (also run by the `after` hook). */
  cleanup(): Promise<void>;
}

export interface DryVmanOptions {
  /** Extra environment settings, e.g. `{ VMAN_RANGE: '10.0.2.15-10.0.2.16' }`. */
  env?: Record<string, string>;
  operator?: DryRunOperator;
}

export async function dryVman(t: HasAfter, opts: DryVmanOptions = {}): Promise<DryVman> {
  const dir = fs.mkdtempSync(os.tmpdir() + '/vman-api-test-');
  const opened: Vman[] = [];
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    try {
      for (const v of opened) await v.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  t.after(cleanup);

  const kernel = path.join(dir, 'vmlinuz-test');
  fs.writeFileSync(kernel, 'not really a kernel\n');
  const config = loadConfig({
    VMAN_STORAGE_PATH: path.join(dir, 'storage'),
    VMAN_OPERATOR_DRY_RUN: '1',
    VMAN_OBSERVER_INTERVAL: '0',
    // Never pick up a guest image built on this machine: the tests do not depend on it.
    VMAN_GUEST_DIR: path.join(dir, 'no-guest'),
    // The test's own folder holds its boot files (vmlinuz-test, images made by a test).
    VMAN_IMAGE_DIRS: dir,
    ...opts.env,
  });

  const open = async (operator: DryRunOperator): Promise<DryVman> => {
    let vman: Vman;
    try {
      vman = await createVman(config, { operator });
    } catch (err) {
      // A failed first open leaves nothing to test; a failed reopen is what the test is about.
      if (opened.length === 0) await cleanup();
      throw err;
    }
    opened.push(vman);
    return {
      dir, config, vman, operator, kernel, cleanup,
      async api(method, url, payload, headers) {
        const res = await vman.app.inject({ method, url, ...(payload === undefined ? {} : { payload }), ...(headers ? { headers } : {}) });
        return {
          status: res.statusCode,
          type: String(res.headers['content-type'] ?? ''),
          headers: res.headers as Record<string, string | string[] | undefined>,
          body: res.body === '' ? undefined : JSON.parse(res.body),
          raw: res.body,
        };
      },
      rows(sql, ...params) {
        return vman.db.db.prepare(sql).all(...params);
      },
      reopen(o = {}) {
        return open(o.operator ?? operator);
      },
    };
  };
  return open(opts.operator ?? new DryRunOperator());
}

/**
 * One vman shared by the tests of the enclosing `describe` (made in `before`,
 * cleaned up in `after`): only for tests that change nothing, e.g. refusals.
 */
export function sharedDryVman(opts: DryVmanOptions = {}): () => DryVman {
  let v: DryVman | undefined;
  before(async () => {
    v = await dryVman({ after: () => undefined }, opts);
  });
  after(async () => {
    await v?.cleanup();
  });
  return () => {
    if (!v) throw new Error('the shared vman is only there inside the tests of its describe');
    return v;
  };
}

/** Polls `check` until it returns a truthy value (returned), or fails after `timeoutMs`. */
export async function eventually<T>(check: () => T | Promise<T>, what: string, timeoutMs = 2_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const PROBLEM_TYPE = /^application\/problem\+json/;

/** A refusal: the status, problem+json, and the problem fields (detail matching, when given). */
export function assertProblem(res: ApiResponse, status: number, detail?: RegExp): void {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.raw ?? JSON.stringify(res.body)}`);
  assert.match(res.type, PROBLEM_TYPE);
  assert.equal(typeof res.body.type, 'string');
  assert.equal(typeof res.body.title, 'string');
  assert.equal(res.body.status, status);
  assert.equal(typeof res.body.detail, 'string');
  if (detail) assert.match(res.body.detail, detail);
}
