#!/usr/bin/env node
// Runs the unit tests (node --test, with the arguments given) in a temp folder
// of their own (TMPDIR): whatever a test leaves there is a leak, named, and the
// run fails. The folder goes either way, so a leak never outlives the run.
//
//   node scripts/unit-tests.mjs --test-reporter=dot test/*.test.ts
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const hostTmp = os.tmpdir();
const own = mkdtempSync(path.join(hostTmp, 'unit-tests-'));
// Open like /tmp itself: the confinement tests' VM users must pass through it.
chmodSync(own, 0o1777);
// tsx keeps its transform cache in tsx-<euid> of the temp folder: the link keeps
// it shared with every other run, so the tests do not start with a cold cache.
const tsxCache = `tsx-${process.geteuid?.() ?? os.userInfo().username}`;
mkdirSync(path.join(hostTmp, tsxCache), { recursive: true });
symlinkSync(path.join(hostTmp, tsxCache), path.join(own, tsxCache));

const child = spawn(process.execPath, ['--import', 'tsx', '--test', ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, TMPDIR: own },
});
// Ctrl-C reaches the child through the process group; a signal sent to this
// process alone is passed on. Either way the folder is judged and removed below.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));

child.on('exit', (code, signal) => {
  const left = readdirSync(own).filter((e) => e !== tsxCache);
  rmSync(own, { recursive: true, force: true });
  if (left.length > 0) {
    console.error(`unit tests left ${left.length} temp entr${left.length === 1 ? 'y' : 'ies'} behind (removed now): ${left.join(', ')}`);
  }
  const failed = code !== 0 || signal !== null;
  process.exit(failed ? (code || 1) : left.length > 0 ? 1 : 0);
});
