// Steps about vman itself: running it, killing it, starting it again.
import { Given, When } from '@cucumber/cucumber';
import type { VmanWorld } from '../world/vman-world.ts';
import { startVmanAgain } from '../support/crash-tasks.ts';

Given('vman is running on this host', async function (this: VmanWorld) {
  await this.startVman();
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
