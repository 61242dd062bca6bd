// Steps about vman itself: running it, killing it, starting it again.
import { Given, Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import { runVmanServeToEnd } from '../world/vman-service.ts';
import type { VmanWorld } from '../world/vman-world.ts';
import { startVmanAgain } from '../support/crash-tasks.ts';

Given('vman is running on this host', async function (this: VmanWorld) {
  await this.startVman();
});

// A short wait after the power button, so that a guest that ignores it costs seconds, not the default twenty.
Given('vman is running on this host, giving a guest {int} seconds after the ACPI power button', async function (this: VmanWorld, seconds: number) {
  await this.startVman({ env: { VMAN_STOP_ACPI_TIMEOUT: String(seconds) } });
});

// The vman of the Background, started again with a short memory for clients that reconnect.
Given('vman keeps the latest {int} events for clients that reconnect', async function (this: VmanWorld, n: number) {
  await this.vman?.stop();
  await this.startVman({ env: { VMAN_EVENT_REPLAY: String(n) } });
});

Given('vman runs as a separate process', async function (this: VmanWorld) {
  await this.vman?.stop();
  await this.startVman({ child: true });
});

When('vman is killed with SIGKILL and started again', async function (this: VmanWorld) {
  await killVman(this);
  await this.startVman({ child: true });
});

When('vman is shut down and started again', async function (this: VmanWorld) {
  await this.api().stop();
  await this.startVman({ child: this.child !== undefined });
});

When('vman is killed with SIGKILL', async function (this: VmanWorld) {
  await killVman(this);
});

When('vman is started again', async function (this: VmanWorld) {
  await startVmanAgain(this);
});

async function killVman(world: VmanWorld): Promise<void> {
  if (!world.child) throw new Error('vman is not running as a separate process in this scenario');
  await world.child.kill('SIGKILL');
}

When('a second vman is started on the same storage', async function (this: VmanWorld) {
  this.notes.secondVman = await runVmanServeToEnd({ storagePath: this.api().storagePath });
});

Then('it refuses to start with status {int}, naming the running vman', async function (this: VmanWorld, status: number) {
  const second = this.noted('secondVman', 'a second vman started on the same storage');
  const first = this.child;
  if (!first) throw new Error('the first vman is not a separate process in this scenario');
  this.attach(second.output, { mediaType: 'text/plain', fileName: 'what the second vman said' });
  expect(second.exitCode, 'exit status of the second vman').to.equal(status);
  expect(second.output, 'its message').to.include(`in use by vman pid ${first.pid}, serving ${first.baseUrl.replace(/\/$/, '')}`);
  const answer = await this.api().http.get(`${second.url}/health`, { prefixUrl: '', timeout: { request: 2_000 } }).then((r) => `HTTP ${r.statusCode}`, (e: Error & { code?: string }) => e.code ?? e.message);
  expect(answer, `what answers at ${second.url}, where it was told to listen`).to.equal('ECONNREFUSED');
});
