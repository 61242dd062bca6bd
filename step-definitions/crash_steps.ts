// Steps about vman dying in the middle of an operation (at a named crash
// point) and coming back: what it left is judged by the suite's own readers.
import { Given, Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import type { VmanWorld } from '../world/vman-world.ts';
import { latestReport } from '../support/observer-tasks.ts';
import {
  damagedMarkers, OPERATIONS, OUTCOMES, picture, prepare, type OperationName, type OutcomeName,
} from '../support/crash-tasks.ts';
import type { CrashPoint } from '../support/closed-sets.ts';
import { momentFlaws } from '../support/crash-moments.ts';

Given('everything is ready to {operation}, with vman set to die at "{crash-point}"', async function (this: VmanWorld, op: OperationName, point: CrashPoint) {
  this.notes.crashPoint = point;
  await prepare(this, op, point);
});

/** Asks for the operation, noting everything before; an answer that never came is noted as such. */
async function ask(world: VmanWorld, op: OperationName): Promise<void> {
  world.notes.pictureBefore = await picture(world);
  world.lastResponse = undefined;
  const answer = await OPERATIONS[op].request(world).then(
    (res) => {
      world.lastResponse = res;
      return `HTTP ${res.statusCode}: ${JSON.stringify(res.body)}`;
    },
    (err: Error & { code?: string }) => `no answer (${err.code ?? err.message})`,
  );
  world.notes.crashAnswer = answer;
}

When('the operator asks to {operation}', async function (this: VmanWorld, op: OperationName) {
  await ask(this, op);
});

Then('vman dies at "{crash-point}" without answering', async function (this: VmanWorld, point: CrashPoint) {
  const child = this.child;
  if (!child) throw new Error('vman is not running as a separate process in this scenario');
  const answer = this.noted('crashAnswer', 'what the operator got back');
  expect(answer, 'what the operator got back').to.match(/^no answer/);
  const exit = await child.exited;
  expect(exit, 'how vman ended').to.deep.equal({ code: null, signal: 'SIGKILL' });
  expect(child.log(), "vman's last words").to.include(`vman: crash point ${point} reached`);
  this.attach(`The operator got ${answer}; vman ended by ${exit.signal}`, 'text/plain');
});

// The operation a crash point belongs to, as vman's intent journal names it (network steps belong to a start or a stop).
const INTENT_OF: Record<string, string> = { 'network.setup': 'vm.start', 'network.release': 'vm.stop' };

// Before any recovery: the picture the moment's words promise, read by the suite.
Then('what it left at that moment shows {crash-moment}', async function (this: VmanWorld, moment: string) {
  const point = this.noted('crashPoint', 'the crash point vman was set to die at');
  const prefix = point.split('.').slice(0, 2).join('.');
  const { flaws, seen } = await momentFlaws(this, moment, INTENT_OF[prefix] ?? prefix);
  this.attach(`At ${point}, before vman was started again: ${seen}`, 'text/plain');
  expect(flaws, `what is not so at ${point} (seen: ${seen})`).to.deep.equal([]);
});

Then("the observer's start-up report named the operation vman did not finish", async function (this: VmanWorld) {
  const point = this.noted('crashPoint', 'the crash point vman was set to die at');
  const prefix = point.split('.').slice(0, 2).join('.');
  const op = INTENT_OF[prefix] ?? prefix;
  const report = await latestReport(this);
  if (!report) throw new Error('vman has no observer report after starting');
  const unfinished = report.findings.filter((f) => f.kind === 'intent-unfinished');
  expect(unfinished.map((f) => f.recorded.split(' of ')[0]), 'the unfinished operations the start-up report names').to.deep.equal([op]);
});

Then('everything is as it was before the operator asked', async function (this: VmanWorld) {
  const before = this.noted('pictureBefore', 'an operation asked for in this scenario');
  const now = await picture(this);
  expect(now.database, 'every table of the database (but updated_at)').to.deep.equal(before.database);
  expect(now.qemu, 'each VM\'s QEMU process and what it holds of block storage').to.deep.equal(before.qemu);
  expect(now.files, 'every file under the storage folder').to.deep.equal(before.files);
});

Then('the data written to the disks before is intact', async function (this: VmanWorld) {
  expect(await damagedMarkers(this), 'disks whose data does not read back').to.deep.equal([]);
});

When('the operator asks to {operation} again', async function (this: VmanWorld, op: OperationName) {
  await ask(this, op);
});

Then('the request to {operation} succeeded', async function (this: VmanWorld, op: OperationName) {
  const res = this.lastResponse;
  expect(res?.statusCode, `vman's answer: ${String(this.notes.crashAnswer)}`).to.equal(OPERATIONS[op].status);
  await OPERATIONS[op].done(this);
});

Then('{outcome}', async function (this: VmanWorld, outcome: OutcomeName) {
  await OUTCOMES[outcome](this);
});
