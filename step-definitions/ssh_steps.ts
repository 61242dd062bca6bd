// Steps about reaching a guest as its user does: the OpenSSH client, the
// operator's own key, the port vman forwards.
import { Then } from '@cucumber/cucumber';
import { expect } from 'chai';
import { GUEST_STEP } from '../support/timeouts.ts';
import type { VmanWorld } from '../world/vman-world.ts';
import { sshRun } from '../support/real-guest.ts';

Then('an SSH session to {string} as its default user runs {string} and prints {string}', GUEST_STEP, async function (this: VmanWorld, name: string, command: string, printed: string) {
  expect(await sshRun(this, name, command), `what ${command} printed over SSH`).to.equal(printed);
});
