// Options of the allure-cucumberjs formatter (cucumber.js hands them over).
// Plain JavaScript: cucumber.js loads it before tsx is registered, and the
// formatter runs in the coordinating process, never in a worker, so what is
// computed here is computed once per run.
import { execFileSync } from 'node:child_process';
import os from 'node:os';

export const ALLURE_RESULTS = 'reports/allure-results';

/**
 * The timeline draws one lane per host and thread label: a CI shard is a host
 * (VMAN_SHARD, set per job by the workflow; this machine's name locally), each
 * cucumber worker a thread ("worker 0", "worker 1"; "main" without --parallel).
 */
export function laneLabels(workerThread, env = process.env) {
  const host = env.VMAN_SHARD || os.hostname();
  const thread = /^\d+$/.test(workerThread ?? '') ? `worker ${workerThread}` : 'main';
  return { host, thread };
}

/** What a scenario needs from the host, for the durations-by-layer chart: QEMU costs seconds, the rest milliseconds. */
export function layerOf(tags) {
  if (tags.includes('@real-guest')) return 'Debian guest';
  if (tags.includes('@integration')) return 'QEMU';
  return 'no QEMU';
}

const replaceLabel = (labels, name, value) => [...labels.filter((l) => l.name !== name), { name, value }];

/** Cucumber's message repeats the stack, which is in the trace already; without it equal messages group together. */
export function withoutStack(message) {
  return message?.replace(/\n\s+at [\s\S]*$/, '').trimEnd();
}

/**
 * The formatter passes a scenario whose step has no definition (the step gets
 * no status and this message); it is broken, and says which step. Attachments
 * are status-less steps too, but without the message.
 */
export function undefinedStepToBroken(result) {
  const step = result.steps?.find((s) => s.status == null && /doesn't have an implementation/.test(s.statusDetails?.message ?? ''));
  if (!step || result.status === 'failed' || result.status === 'broken') return;
  result.status = 'broken';
  result.statusDetails = { ...result.statusDetails, message: `undefined step: ${step.name} (no step definition matches it)` };
}

/**
 * Rewrites each result as the formatter makes it: lanes and layer at the
 * start; at the end undefined steps and messages as above, and a scenario that
 * passed after an attempt of the same run failed (cucumber --retry) is marked
 * flaky, which Allure otherwise learns only from history.
 */
export function resultListener(env = process.env) {
  const failedBefore = new Set();
  const attemptKey = (r) => `${r.fullName}\u0000${JSON.stringify(r.parameters ?? [])}`;
  return {
    beforeTestResultStart(result) {
      const { host, thread } = laneLabels(result.labels.find((l) => l.name === 'thread')?.value, env);
      const tags = result.labels.filter((l) => l.name === 'tag').map((l) => l.value);
      result.labels = replaceLabel(replaceLabel(replaceLabel(result.labels, 'host', host), 'thread', thread), 'layer', layerOf(tags));
    },
    beforeTestResultWrite(result) {
      undefinedStepToBroken(result);
      for (const r of [result, ...(result.steps ?? [])]) {
        if (r.statusDetails?.message) r.statusDetails.message = withoutStack(r.statusDetails.message);
      }
      const key = attemptKey(result);
      if (result.status === 'passed' && failedBefore.has(key)) {
        result.statusDetails = { ...result.statusDetails, flaky: true };
      } else if (result.status === 'failed' || result.status === 'broken') {
        failedBefore.add(key);
      }
    },
  };
}

function firstLine(file, args) {
  try {
    return execFileSync(file, args, { encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0].trim();
  } catch {
    return undefined;
  }
}

/**
 * The report's metadata panel: what the run ran on. One panel for the whole
 * report (the last shard's wins), so no shard name here: the host label and
 * the timeline name each scenario's shard. What is known before the run; the
 * run's own findings (the accelerator vman's probe decided and why, the guest
 * images' keys: support/run-environment.ts) replace and add to it once a
 * scenario reached QEMU (support/allure-reporter.mjs). No guess from /dev/kvm's
 * permissions: on some hosts it opens and KVM still does not work.
 */
export function environmentInfo(env = process.env) {
  const qemu = firstLine('qemu-system-x86_64', ['--version']);
  return {
    'Node.js': process.version,
    QEMU: qemu?.replace(/^QEMU emulator version /, '') ?? 'not found',
    VMAN_ACCEL: env.VMAN_ACCEL || 'auto',
    accelerator: 'not known: no scenario reached QEMU',
    kernel: os.release(),
    CPUs: String(os.availableParallelism()),
  };
}

/**
 * Every tag stays a `tag` label (the report's tag filter) and the feature's
 * name is the `feature` label (the tree and the stability chart): the
 * formatter does both. Lanes, layer and flakiness come from the listener above.
 */
export function allureFormatOptions(env = process.env) {
  return {
    resultsDir: ALLURE_RESULTS,
    environmentInfo: environmentInfo(env),
    listeners: [resultListener(env)],
  };
}
