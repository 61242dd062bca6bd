// Steps of the nemesis: a seeded random workload, vman killed at random
// moments, and after every restart the whole system judged (support/nemesis.ts).
import { Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import type { VmanWorld } from '../world/vman-world.ts';
import { describeNemesis, nemesisSettings, runNemesis, type NemesisRun, type NemesisSettings } from '../support/nemesis.ts';
import { startVmanAgain } from '../support/crash-tasks.ts';

function run(world: VmanWorld): NemesisRun {
  return world.noted('nemesisRun', 'a nemesis run in this scenario');
}

/** Every failure names the seed, so that it can be run again. */
const seedOf = (r: NemesisRun): string => `seed ${r.settings.seed} (VMAN_NEMESIS_SEED=${r.settings.seed} to run it again)`;

// A round is seconds of work and a restart; twelve rounds fit well within this.
When('{int} clients run a random workload while vman is killed at random moments, {int} times', { timeout: 10 * 60_000 }, async function (this: VmanWorld, clients: number, rounds: number) {
  const settings = nemesisSettings({ clients, rounds });
  this.attach(`nemesis ${seedOfSettings(settings)}`, 'text/plain');
  const { verdicts, answers } = await runNemesis(this, settings, () => startVmanAgain(this));
  this.notes.nemesisRun = { settings, verdicts, answers };
  this.attach(describeNemesis(settings, verdicts, answers), { mediaType: 'text/plain', fileName: 'nemesis: rounds and every answer' });
});

function seedOfSettings(s: NemesisSettings): string {
  return `seed ${s.seed}, ${s.clients} clients, ${s.rounds} rounds`;
}

Then('in every round the kill cut off at least one request', function (this: VmanWorld) {
  const r = run(this);
  expect(r.verdicts.filter((v) => v.cutOff === 0).map((v) => `round ${v.round}`), `rounds in which vman died with nothing in flight; ${seedOf(r)}`).to.deep.equal([]);
});

Then('after every restart the database, QEMU, the guests and the files agreed', function (this: VmanWorld) {
  const r = run(this);
  expect(r.verdicts.flatMap((v) => v.disagreements.map((d) => `round ${v.round}: ${d}`)), `disagreements after a restart; ${seedOf(r)}`).to.deep.equal([]);
});

Then('after every restart the observer found nothing wrong', function (this: VmanWorld) {
  const r = run(this);
  expect(r.verdicts.flatMap((v) => v.findings.map((f) => `round ${v.round}: ${f}`)), `observer findings after a restart; ${seedOf(r)}`).to.deep.equal([]);
});

Then('after every restart the next operations worked', function (this: VmanWorld) {
  const r = run(this);
  expect(r.verdicts.flatMap((v) => v.nextWorks.map((f) => `round ${v.round}: ${f}`)), `operations that failed after a restart; ${seedOf(r)}`).to.deep.equal([]);
});

Then('no request was ever answered with a server error', function (this: VmanWorld) {
  const r = run(this);
  const errors = r.answers.filter((a) => typeof a.status === 'number' && a.status >= 500);
  expect(errors.map((a) => `round ${a.round}, client ${a.client}: ${a.op} → ${a.status} ${a.detail}`), `answers of 500 or more; ${seedOf(r)}`).to.deep.equal([]);
});
