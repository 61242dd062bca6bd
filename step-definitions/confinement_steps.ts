// Steps about what confines a VM's QEMU (vman as root): its user, privileges,
// sandbox and cgroup, read from /proc and the cgroup files; who may open which
// file, read from the files and asked of QEMU over the VM's own monitor.
import { Then, When } from '@cucumber/cucumber';
import { expect } from 'chai';
import path from 'node:path';
import type { VmanWorld } from '../world/vman-world.ts';
import { recordedVm, type RecordedVm } from '../support/vm-facts.ts';
import { qemuOfVm } from '../support/proc-reader.ts';
import { cgroupsOf, limitsOf, processesIn } from '../support/cgroup-reader.ts';
import {
  aclOf, credentialsOf, effective, hostIds, octal, ownershipOf, qemuOpenRefusal, seccompKillRecord, type FileOwnership,
} from '../support/confinement-facts.ts';
import { withQmp } from '../support/qmp-reader.ts';

const MB = 1024 * 1024;

interface QemuUser {
  uid: number;
  gid: number;
}

/** The uid and gid the database file recorded for the VM's QEMU. */
async function recordedUser(world: VmanWorld, name: string): Promise<QemuUser> {
  const row = await world.db().vmByName(name);
  if (!row) throw new Error(`the database has no VM named ${name}`);
  const uid = row.qemu_uid as number | null;
  const gid = row.qemu_gid as number | null;
  if (uid === null || gid === null) throw new Error(`the database recorded no QEMU user for ${name} (qemu_uid ${uid}, qemu_gid ${gid})`);
  return { uid, gid };
}

async function qemuPid(vm: RecordedVm, name: string): Promise<number> {
  const p = await qemuOfVm(vm.id, vm.dir);
  if (!p) throw new Error(`no QEMU process of ${name} (vman-${vm.id} under ${vm.dir})`);
  return p.pid;
}

async function diskFile(world: VmanWorld, disk: string): Promise<string> {
  const row = await world.db().one('SELECT path FROM disks WHERE name = ?', [disk]);
  if (!row) throw new Error(`the database has no disk named ${disk}`);
  return String(row.path);
}

/** The image of a VM's root disk in one of its snapshots, as the database file records it. */
async function snapshotRootImage(world: VmanWorld, snapshot: string): Promise<string> {
  const row = await world.db().one('SELECT disks FROM snapshots WHERE name = ?', [snapshot]);
  if (!row) throw new Error(`the database has no snapshot named ${snapshot}`);
  const disks = JSON.parse(String(row.disks)) as Array<{ role: string; image: string }>;
  const root = disks.find((d) => d.role === 'root');
  if (!root) throw new Error(`snapshot ${snapshot} holds no root disk: ${String(row.disks)}`);
  return root.image;
}

function expectOwnership(seen: FileOwnership, want: FileOwnership, what: string): void {
  expect({ uid: seen.uid, gid: seen.gid, mode: octal(seen.mode) }, what).to.deep.equal({ uid: want.uid, gid: want.gid, mode: octal(want.mode) });
}

Then('the QEMU of {string} runs as the uid and gid the database recorded for {string}, which no user or group of this host has', async function (this: VmanWorld, name: string, same: string) {
  const vm = await recordedVm(this, same);
  const user = await recordedUser(this, same);
  const creds = await credentialsOf(await qemuPid(vm, name));
  expect({ uids: creds.uids, gids: creds.gids }, `/proc status of the QEMU of ${name}`).to.deep.equal({ uids: Array(4).fill(user.uid), gids: Array(4).fill(user.gid) });
  expect(user.uid, 'the recorded uid').to.not.equal(0);
  expect([...(await hostIds('/etc/passwd'))], 'uids in /etc/passwd').to.not.include(user.uid);
  expect([...(await hostIds('/etc/group'))], 'gids in /etc/group').to.not.include(user.gid);
});

Then('the QEMU of {string} has no supplementary groups, no capabilities, no_new_privs set and a seccomp filter', async function (this: VmanWorld, name: string) {
  const creds = await credentialsOf(await qemuPid(await recordedVm(this, name), name));
  expect({ groups: creds.groups, capEff: creds.capEff.toString(16), capPrm: creds.capPrm.toString(16), noNewPrivs: creds.noNewPrivs, seccomp: creds.seccomp }, `/proc status of the QEMU of ${name}`)
    .to.deep.equal({ groups: [], capEff: '0', capPrm: '0', noNewPrivs: 1, seccomp: 2 });
});

Then('the QEMU of {string} is alone in a cgroup of its own, limited to {int} MB of memory and {int} processes', async function (this: VmanWorld, name: string, mb: number, pids: number) {
  const vm = await recordedVm(this, name);
  const pid = await qemuPid(vm, name);
  const groups = (await cgroupsOf(pid)).filter((c) => c.controllers.includes('memory') || c.controllers.includes('pids'));
  expect(groups.map((c) => c.controllers.join(',')).sort(), `memory and pids hierarchies of the QEMU of ${name}`).to.deep.equal(['memory', 'pids']);
  for (const c of groups) {
    expect(path.basename(c.path), `its ${c.controllers.join(',')} cgroup is named for the VM`).to.equal(vm.id);
    expect(await processesIn(c.dir), `processes in ${c.dir}`).to.deep.equal([pid]);
  }
  expect(await limitsOf(groups), `the limits of the cgroups of ${name}`).to.deep.equal({ memoryBytes: mb * MB, pids });
});

Then('the folder of {string} is its QEMU user\'s with mode {word}, and so are its seed with mode {word} and its console log with mode {word}', async function (this: VmanWorld, name: string, dirMode: string, seedMode: string, logMode: string) {
  const vm = await recordedVm(this, name);
  const user = await recordedUser(this, name);
  for (const [file, mode] of [[vm.dir, dirMode], [path.join(vm.dir, 'seed.iso'), seedMode], [path.join(vm.dir, 'serial.log'), logMode]] as const) {
    expectOwnership(await ownershipOf(file), { ...user, mode: Number.parseInt(mode, 8) }, file);
  }
});

Then('the QEMU processes of {string} and {string} run as two different users', async function (this: VmanWorld, a: string, b: string) {
  const [ca, cb] = await Promise.all([a, b].map(async (n) => credentialsOf(await qemuPid(await recordedVm(this, n), n))));
  expect(ca!.uids[1], `the uid of the QEMU of ${a}`).to.not.equal(cb!.uids[1]);
  expect(ca!.gids[1], `the gid of the QEMU of ${a}`).to.not.equal(cb!.gids[1]);
});

Then('the disk {string} belongs to the QEMU user of {string}, with mode {word}', async function (this: VmanWorld, disk: string, vm: string, mode: string) {
  expectOwnership(await ownershipOf(await diskFile(this, disk)), { ...(await recordedUser(this, vm)), mode: Number.parseInt(mode, 8) }, `the file of disk ${disk}`);
});

Then('the disk {string} belongs to vman\'s user again, with mode {word}', async function (this: VmanWorld, disk: string, mode: string) {
  // vman runs as the suite's user (root).
  expectOwnership(await ownershipOf(await diskFile(this, disk)), { uid: process.getuid!(), gid: process.getgid!(), mode: Number.parseInt(mode, 8) }, `the file of disk ${disk}`);
});

async function expectRefused(world: VmanWorld, name: string, file: string, what: string): Promise<void> {
  const refusal = await qemuOpenRefusal((await recordedVm(world, name)).dir, file);
  expect(refusal, `QEMU of ${name} asked to open ${what} (${file})`).to.be.a('string');
  expect(refusal, `QEMU of ${name} asked to open ${what} (${file})`).to.include('Permission denied');
}

Then('over its own monitor, the QEMU of {string} cannot open the host\'s {string}: Permission denied', async function (this: VmanWorld, name: string, file: string) {
  await expectRefused(this, name, file, 'a host file');
});

Then('over its own monitor, the QEMU of {string} cannot open vman\'s database: Permission denied', async function (this: VmanWorld, name: string) {
  await expectRefused(this, name, this.api().dbPath, 'the database');
});

Then('over its own monitor, the QEMU of {string} cannot open the disk {string}: Permission denied', async function (this: VmanWorld, name: string, disk: string) {
  await expectRefused(this, name, await diskFile(this, disk), `the disk ${disk}`);
});

Then('over its own monitor, the QEMU of {string} cannot open the seed of {string}: Permission denied', async function (this: VmanWorld, name: string, other: string) {
  await expectRefused(this, name, path.join((await recordedVm(this, other)).dir, 'seed.iso'), `the seed of ${other}`);
});

Then('over its own monitor, the QEMU of {string} cannot open the root disk of {string}: Permission denied', async function (this: VmanWorld, name: string, other: string) {
  await expectRefused(this, name, path.join((await recordedVm(this, other)).dir, 'root.qcow2'), `the root disk of ${other}`);
});

When('over its own monitor, the QEMU of {string} is asked to migrate to {string}', async function (this: VmanWorld, name: string, uri: string) {
  const vm = await recordedVm(this, name);
  this.notes.killedQemu = { pid: await qemuPid(vm, name), user: await recordedUser(this, name) };
  // QEMU forks for exec: and dies then: the answer may come first, or the monitor may close instead.
  await withQmp(vm.dir, (qmp) => qmp.execute('migrate', { uri })).catch(() => undefined);
});

Then('the kernel\'s audit log shows the QEMU of {string} killed by SIGSYS, under the uid vman recorded for {string}', async function (this: VmanWorld, _name: string, _same: string) {
  const killed = this.noted('killedQemu', 'a QEMU asked to run a program');
  const record = await seccompKillRecord(killed.pid);
  expect({ uid: record.uid, sig: record.sig }, record.line).to.deep.equal({ uid: killed.user.uid, sig: 31 });
});

Then('the QEMU of {string} runs its root disk over the image of the snapshot {string}', async function (this: VmanWorld, name: string, snapshot: string) {
  const image = await snapshotRootImage(this, snapshot);
  type Inserted = { backing_file?: string; image?: { 'full-backing-filename'?: string; 'backing-filename'?: string } };
  const blocks = await withQmp((await recordedVm(this, name)).dir, (qmp) => qmp.execute<Array<{ inserted?: Inserted }>>('query-block'));
  const backings = blocks.map((b) => b.inserted?.image?.['full-backing-filename'] ?? b.inserted?.backing_file).filter((f): f is string => typeof f === 'string');
  expect(backings, `backing files QEMU of ${name} reports (query-block)`).to.include(image);
});

Then('the image of the snapshot {string} is readable by the QEMU user of {string} and by no other user but root', async function (this: VmanWorld, snapshot: string, clone: string) {
  const image = await snapshotRootImage(this, snapshot);
  const acl = await aclOf(image);
  const user = await recordedUser(this, clone);
  expect((await ownershipOf(image)).uid, `owner of ${image}`).to.equal(0);
  expect(Object.fromEntries([...acl.users].map(([uid, perms]) => [uid, effective(perms, acl.mask)])), `named users in the ACL of ${image}`).to.deep.equal({ [user.uid]: 'r--' });
  expect({ group: effective(acl.group, acl.mask), other: acl.other }, `group and other in the ACL of ${image}`).to.deep.equal({ group: '---', other: '---' });
});

Then('the image of the snapshot {string} is readable by no user but root', async function (this: VmanWorld, snapshot: string) {
  const image = await snapshotRootImage(this, snapshot);
  const acl = await aclOf(image);
  expect({ users: [...acl.users.keys()], group: effective(acl.group, acl.mask), other: acl.other }, `the ACL of ${image}`).to.deep.equal({ users: [], group: '---', other: '---' });
});
