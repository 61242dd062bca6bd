// Steps about the `vman` command line: the real command is run, and its
// effects are checked in the database file, QEMU (QMP, /proc) and the guest.
import { Given, Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import type { VmanWorld } from '../world/vman-world.ts';
import { commandWords, lastRun, runVman, runVmanOk, tableRows } from '../support/cli-tasks.ts';
import { GUEST_STEP } from '../support/timeouts.ts';
import { guestIpv4, recordedVm, rememberVm } from '../support/vm-facts.ts';

When('the operator runs {string}', GUEST_STEP, async function (this: VmanWorld, line: string) {
  await runVmanOk(this, commandWords(line));
});

When('the operator tries {string}', async function (this: VmanWorld, line: string) {
  await runVman(this, commandWords(line));
});

Then('the database records a VM {string} made from the {word} template', async function (this: VmanWorld, name: string, template: string) {
  const row = await this.db().vmByName(name);
  expect(row, `a row for ${name} in vms`).to.not.equal(undefined);
  const tpl = await this.db().one('SELECT name FROM templates WHERE id = ?', [row!.template_id]);
  expect(tpl?.name, `the template of ${name}`).to.equal(template);
  this.ids.set(name, String(row!.id));
  await rememberVm(this, name);
});

Then('the database records the disk {string} as attached to {string}', async function (this: VmanWorld, disk: string, vm: string) {
  const row = await this.db().one('SELECT d.id, d.state, v.name AS vm FROM disks d LEFT JOIN vms v ON v.id = d.vm_id WHERE d.name = ?', [disk]);
  expect(row, `a row for ${disk} in disks`).to.not.equal(undefined);
  expect({ state: row!.state, vm: row!.vm }, `the disk ${disk}`).to.deep.equal({ state: 'attached', vm });
  this.ids.set(disk, String(row!.id));
});

Then('{string} shows {string} running at the address its guest agent reports', async function (this: VmanWorld, line: string, name: string) {
  const run = await runVmanOk(this, commandWords(line));
  const rows = tableRows(run.stdout).filter((r) => r.NAME === name);
  expect(rows, `rows for ${name} in:\n${run.stdout}`).to.have.length(1);
  const vm = await recordedVm(this, name);
  expect(await guestIpv4(vm.dir), 'the IPv4 addresses the guest agent reports').to.deep.equal([rows[0]!.ADDRESS]);
  expect({ id: rows[0]!.ID, state: rows[0]!.STATE }, `the row of ${name}`).to.deep.equal({ id: vm.id, state: 'running' });
});

Then('{string} shows the ready marker line of the test guest', async function (this: VmanWorld, line: string) {
  const run = await runVmanOk(this, commandWords(line));
  const marker = this.host.guest.readyMarker;
  expect(run.stdout.split('\n').some((l) => l.includes(marker)), `a console line with ${marker} in:\n${run.stdout.slice(-2000)}`).to.equal(true);
});

Then('its JSON is what the API answers to GET {word}', async function (this: VmanWorld, apiPath: string) {
  const run = lastRun(this);
  expect(run.exitCode, `exit code; stderr: ${run.stderr}`).to.equal(0);
  // `{name}` in the path stands for the id of what the scenario named so.
  const url = apiPath.replace(/\{([^}]+)\}/g, (_m, n: string) => this.idOf(n)).replace(/^\//, '');
  const res = await this.api().http.get(`api/v1/${url}`, { responseType: 'json' });
  expect(res.statusCode, `GET ${url}`).to.equal(200);
  expect(JSON.parse(run.stdout), `vman ${run.args.join(' ')} against GET ${url}`).to.deep.equal(res.body);
});

Then('the command exits with code {int}', function (this: VmanWorld, code: number) {
  const run = lastRun(this);
  expect(run.exitCode, `exit code of vman ${run.args.join(' ')}; stderr: ${run.stderr}`).to.equal(code);
});

Then('its error output says {string}', function (this: VmanWorld, words: string) {
  const run = lastRun(this);
  expect(run.stderr, `stderr of vman ${run.args.join(' ')}`).to.include(words);
});

Then('the database holds the same VMs as before the command', async function (this: VmanWorld) {
  const before = this.notes.vmsBeforeCommand;
  expect(await this.db().all('SELECT * FROM vms ORDER BY id'), 'rows of vms').to.deep.equal(before);
});

Given('the VMs vman holds are noted', async function (this: VmanWorld) {
  this.notes.vmsBeforeCommand = await this.db().all('SELECT * FROM vms ORDER BY id');
});
