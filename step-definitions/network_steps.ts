// Steps about VM addresses and the network vman runs: checked through the
// database file, the guest agent, dnsmasq's files, /proc and `ip -j` inside
// the scenario's own network namespace; the API is one witness among several.
import { Given, Then, When, type DataTable } from '@cucumber/cucumber';
import { expect } from 'chai';
import { parseIpv4 } from '../support/ipv4.ts';
import { isAlive } from '../support/proc-reader.ts';
import path from 'node:path';
import { waitForConsoleLine } from '../support/waiters.ts';
import type { VmanWorld } from '../world/vman-world.ts';
import { expectStatus, getVm, startNotingRecords, startRunningVm, vmAction } from '../support/vm-tasks.ts';
import { guestIpv4, recordedVm, rememberVm } from '../support/vm-facts.ts';
import { qemuProcessOf } from '../support/qemu-facts.ts';
import { BRIDGE_NET, dnsmasqProcessesUnder, netnsId } from '../support/netns.ts';
import { scenarioNetns, serveInNetns, startVmanInNetns } from '../support/bridge-vman.ts';
import { kernelVlanSupport } from '../support/vlan-probe.ts';
import {
  allocationsInDb, bridgePorts, dnsmasqOf, leasesOfDnsmasq, macOf, networkDir, networkFromApi, pingAcrossBridge,
  qemuPidOf, reservationsInDnsmasq, tapsHeldBy, vlansOfPort, waitForLease,
} from '../support/network-facts.ts';

const SETTING_ENV: Record<string, string> = {
  mode: 'VMAN_NETWORK_MODE', bridge: 'VMAN_BRIDGE', vlan: 'VMAN_VLAN', subnet: 'VMAN_SUBNET', gateway: 'VMAN_GATEWAY', range: 'VMAN_RANGE',
};

async function startVmanWith(world: VmanWorld, env: Record<string, string>): Promise<void> {
  await world.vman?.stop();
  await world.startVman({ env });
  world.notes.addressRange = env.VMAN_RANGE ?? '10.0.2.15-10.0.2.254';
}

async function dbAddress(world: VmanWorld, name: string): Promise<string> {
  const vm = await recordedVm(world, name);
  const address = await world.db().addressOf(vm.id);
  if (address === undefined) throw new Error(`the database allocates no address to ${name} (state ${vm.state})`);
  return address;
}

// ---- vman's settings --------------------------------------------------------

Given('vman is running with the address range {ip}-{ip}', async function (this: VmanWorld, first: string, last: string) {
  await startVmanWith(this, { VMAN_RANGE: `${first}-${last}` });
});

Given('vman is running with these network settings:', async function (this: VmanWorld, table: DataTable) {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(table.rowsHash())) {
    const name = SETTING_ENV[key];
    if (!name) throw new Error(`unknown network setting ${key}; known: ${Object.keys(SETTING_ENV).join(', ')}`);
    env[name] = value;
  }
  await startVmanWith(this, env);
});

Given('vman runs in bridge mode in a network namespace of its own', async function (this: VmanWorld) {
  const ns = await startVmanInNetns(this);
  this.attach(`namespace ${ns.name}: bridge ${BRIDGE_NET.bridge} ${BRIDGE_NET.gateway}/${BRIDGE_NET.prefix}; vman at ${ns.nsAddress} over veth ${ns.hostVeth}`, 'text/plain');
});

Given('vman runs in bridge mode with VLAN {int} in a network namespace of its own', async function (this: VmanWorld, vlan: number) {
  const ns = await startVmanInNetns(this, { vlan });
  this.attach(`namespace ${ns.name}: bridge ${BRIDGE_NET.bridge} ${BRIDGE_NET.gateway}/${BRIDGE_NET.prefix}, VLAN ${vlan}; vman at ${ns.nsAddress}`, 'text/plain');
});

Given('this kernel can filter VLANs on a bridge', async function (this: VmanWorld) {
  const support = await kernelVlanSupport();
  if (!support.supported) {
    this.attach(`Skipped: ${support.reason}`, 'text/plain');
    return 'skipped';
  }
  return undefined;
});

Given('this kernel cannot filter VLANs on a bridge', async function (this: VmanWorld) {
  const support = await kernelVlanSupport();
  if (support.supported) {
    this.attach('Skipped: this kernel can filter VLANs on a bridge, so vman has no refusal to show here', 'text/plain');
    return 'skipped';
  }
  this.attach(`Kernel probe: ${support.reason}`, 'text/plain');
  return undefined;
});

When('vman in the namespace is killed with SIGKILL and started again', async function (this: VmanWorld) {
  if (!this.child) throw new Error('vman is not running as a separate process in this scenario');
  const before = await dnsmasqOf(this);
  if (!before) throw new Error('no dnsmasq serves the bridge before vman is killed');
  this.notes.dnsmasqPid = before.proc.pid;
  await this.child.kill('SIGKILL');
  await serveInNetns(this);
});

// ---- starting VMs -----------------------------------------------------------

When('a VM {string} from the {word} template is started', async function (this: VmanWorld, name: string, template: string) {
  await startRunningVm(this, name, template);
  await rememberVm(this, name);
});

When('the VMs {string} and {string} are started at the same moment', async function (this: VmanWorld, a: string, b: string) {
  const [ra, rb] = await Promise.all([vmAction(this, a, 'start'), vmAction(this, b, 'start')]);
  expectStatus(ra!, 200, `start ${a}`);
  expectStatus(rb!, 200, `start ${b}`);
  await rememberVm(this, a);
  await rememberVm(this, b);
});

When('the VM {string} is started while every address is taken', async function (this: VmanWorld, name: string) {
  await startNotingRecords(this, name);
  await rememberVm(this, name);
});

// ---- addresses --------------------------------------------------------------

Then('the database records the address {ip} for {string}', async function (this: VmanWorld, address: string, name: string) {
  expect(await dbAddress(this, name), `address of ${name} in address_allocations`).to.equal(address);
  expect((await recordedVm(this, name)).state, `state of ${name} in the database`).to.equal('running');
});

Then('the API shows {string} with the address {ip}', async function (this: VmanWorld, name: string, address: string) {
  expect((await getVm(this, name)).address, `address of ${name} in the API`).to.equal(address);
});

Then('the guest of {string} reports the address {ip} through its agent', async function (this: VmanWorld, name: string, address: string) {
  const seen = await guestIpv4((await recordedVm(this, name)).dir);
  expect(seen, `IPv4 addresses the guest agent of ${name} reports (loopback excluded)`).to.deep.equal([address]);
  this.vmNoted(name).guestAddress = address;
});

Then('{string} and {string} hold different addresses of the range, in the database and in their guests', async function (this: VmanWorld, a: string, b: string) {
  const [first, last] = this.noted('addressRange', 'the address range vman was started with').split('-').map((x) => parseIpv4(x)!);
  const held: string[] = [];
  for (const name of [a, b]) {
    const address = await dbAddress(this, name);
    const ip = parseIpv4(address)!;
    expect(ip >= first! && ip <= last!, `${address} of ${name} within ${this.noted('addressRange', 'the address range vman was started with')}`).to.equal(true);
    expect(await guestIpv4((await recordedVm(this, name)).dir), `addresses the guest agent of ${name} reports`).to.deep.equal([address]);
    held.push(address);
  }
  expect(held[0], `addresses of ${a} and ${b}`).to.not.equal(held[1]);
});

Then('{ip} is allocated to no VM, in the API and in the database', async function (this: VmanWorld, address: string) {
  const api = await networkFromApi(this);
  expect(api.allocations.map((x) => x.address), 'allocations in GET /api/v1/network').to.not.include(address);
  expect((await allocationsInDb(this)).map((x) => x.address), 'address_allocations in the database').to.not.include(address);
});

Then('the start is refused with status {int} because the address range is exhausted', function (this: VmanWorld, status: number) {
  const res = this.lastResponse;
  const body = res?.body as { type?: string; detail?: string } | undefined;
  expect(res?.statusCode, `HTTP status; body ${JSON.stringify(body)}`).to.equal(status);
  expect(res?.headers['content-type'] ?? '').to.include('application/problem+json');
  expect(body?.type, 'problem type').to.equal('urn:vman:problem:address-range-exhausted');
  expect(body?.detail ?? '', 'problem detail').to.match(/no free address: all \d+ addresses of \S+ are allocated/);
});

Then('the start is refused with status {int} saying {string}', function (this: VmanWorld, status: number, words: string) {
  const res = this.lastResponse;
  const body = res?.body as { detail?: string } | undefined;
  expect(res?.statusCode, `HTTP status; body ${JSON.stringify(body)}`).to.equal(status);
  expect(res?.headers['content-type'] ?? '').to.include('application/problem+json');
  expect(body?.detail ?? '', 'problem detail').to.include(words);
});

Then('the VM {string} is unchanged in the database, holds no address and has no QEMU process', async function (this: VmanWorld, name: string) {
  const before = this.vmNoted(name).rowBefore;
  if (!before) throw new Error(`the row of ${name} was not noted before the start`);
  expect(await this.db().vmByName(name), `the row of ${name} after the refused start`).to.deep.equal(before);
  expect(await allocationsInDb(this), 'address_allocations after the refused start').to.deep.equal(this.noted('allocationsBefore', 'the allocations before the start'));
  expect(await qemuProcessOf(String(before.id), String(before.storage_dir)), `a QEMU process of ${name}`).to.equal(undefined);
});

// ---- configuration ----------------------------------------------------------

Then('vman reports this network configuration:', async function (this: VmanWorld, table: DataTable) {
  const n = await networkFromApi(this);
  const shown: Record<string, string> = {
    mode: n.mode,
    bridge: n.bridge ?? 'none',
    vlan: n.vlan === null ? 'none' : String(n.vlan),
    subnet: n.subnet,
    gateway: n.gateway,
    range: `${n.range.start}-${n.range.end}`,
    addresses: String(n.range.size),
  };
  const expected = table.rowsHash();
  expect(Object.fromEntries(Object.keys(expected).map((k) => [k, shown[k]])), 'GET /api/v1/network').to.deep.equal(expected);
});

Then('the allocations are {string} at {ip}, in the API and in the database', async function (this: VmanWorld, name: string, address: string) {
  const api = (await networkFromApi(this)).allocations.map((a) => ({ address: a.address, vmName: a.vm_name, vmId: a.vm_id }));
  expect(api, 'allocations in GET /api/v1/network').to.deep.equal([{ address, vmName: name, vmId: this.idOf(name) }]);
  expect(await allocationsInDb(this), 'address_allocations in the database').to.deep.equal([{ address, vmName: name }]);
});

Then('no address is allocated, in the API and in the database', async function (this: VmanWorld) {
  expect((await networkFromApi(this)).allocations, 'allocations in GET /api/v1/network').to.deep.equal([]);
  expect(await allocationsInDb(this), 'address_allocations in the database').to.deep.equal([]);
});

// ---- bridge mode --------------------------------------------------------------

Then('a dnsmasq started by vman serves DHCP on the bridge inside the namespace', async function (this: VmanWorld) {
  const ns = scenarioNetns(this);
  const found = await dnsmasqOf(this);
  expect(found, `a dnsmasq whose command line names a file in ${networkDir(this)}`).to.not.equal(undefined);
  const { proc, netns } = found!;
  expect(netns, `network namespace of dnsmasq ${proc.pid}`).to.equal(await netnsId(ns.name));
  expect(proc.argv, 'dnsmasq command line').to.include.members([`--interface=${BRIDGE_NET.bridge}`, '--dhcp-range=192.168.77.0,static,255.255.255.0', '--port=0']);
  this.attach(proc.argv.join(' '), { mediaType: 'text/plain', fileName: 'dnsmasq command line' });
});

Then('a new dnsmasq, and only that one, serves the reservation of {string}', async function (this: VmanWorld, name: string) {
  const old = this.noted('dnsmasqPid', 'the dnsmasq serving the bridge before vman was killed');
  const procs = await dnsmasqProcessesUnder(this.api().storagePath);
  expect(procs.map((p) => p.pid), `dnsmasq processes serving ${networkDir(this)}`).to.have.length(1);
  expect(procs[0]!.pid, 'pid of the dnsmasq serving the bridge').to.not.equal(old);
  expect(await isAlive(old), `the dnsmasq the killed vman left (pid ${old}) is still alive`).to.equal(false);
  const reservation = { mac: await macOf(this, name), address: await dbAddress(this, name) };
  expect(await reservationsInDnsmasq(this), 'reservations in dnsmasq dhcp-hosts').to.deep.equal([reservation]);
  expect((await recordedVm(this, name)).state, `state of ${name} after the restart`).to.equal('running');
});

Then('the QEMU process of {string} holds a tap device of its own on the bridge', async function (this: VmanWorld, name: string) {
  const ns = scenarioNetns(this);
  const taps = await tapsHeldBy(await qemuPidOf(this, name));
  expect(taps, `tap devices the QEMU process of ${name} holds (/proc/<pid>/fdinfo)`).to.have.length(1);
  const ports = await bridgePorts(ns, BRIDGE_NET.bridge);
  expect(ports.map((p) => `${p.ifname} (${p.linkinfo?.info_kind ?? '?'})`), `ports of ${BRIDGE_NET.bridge}`).to.deep.equal([`${taps[0]} (tun)`]);
  this.vmNoted(name).tap = taps[0];
});

Then('dnsmasq has reserved and leased that address to the MAC of {string}', async function (this: VmanWorld, name: string) {
  const address = await dbAddress(this, name);
  const seen = this.vmNoted(name).guestAddress;
  if (seen !== undefined) expect(address, 'address in the database').to.equal(seen);
  const mac = await macOf(this, name);
  expect(await reservationsInDnsmasq(this), 'reservations in dnsmasq dhcp-hosts').to.deep.include({ mac, address });
  const lease = await waitForLease(this, mac);
  expect(lease.address, `address dnsmasq leased to ${mac}`).to.equal(address);
});

Then('{string} answers a ping across the bridge from that address and its MAC', async function (this: VmanWorld, name: string) {
  const address = await dbAddress(this, name);
  const { reply, mac } = await pingAcrossBridge(scenarioNetns(this), BRIDGE_NET.bridge, address);
  this.attach(reply, 'text/plain');
  expect(mac, `MAC that answered for ${address} (neighbour table of ${BRIDGE_NET.bridge})`).to.equal(await macOf(this, name));
});

Then('the bridge has no tap device and dnsmasq no reservation for {string}', async function (this: VmanWorld, name: string) {
  const ns = scenarioNetns(this);
  const taps = (await bridgePorts(ns, BRIDGE_NET.bridge)).filter((p) => p.linkinfo?.info_kind === 'tun');
  expect(taps.map((t) => t.ifname), `tap devices on ${BRIDGE_NET.bridge}`).to.deep.equal([]);
  const mac = await macOf(this, name);
  expect((await reservationsInDnsmasq(this)).map((r) => r.mac), 'MACs reserved in dnsmasq dhcp-hosts').to.not.include(mac);
  expect((await leasesOfDnsmasq(this)).map((l) => l.mac), "MACs in dnsmasq's lease file").to.not.include(mac);
});

Then('the tap device of {string} is an untagged member of VLAN {int} only', async function (this: VmanWorld, name: string, vlan: number) {
  const [tap] = await tapsHeldBy(await qemuPidOf(this, name));
  expect(tap, `the tap device the QEMU process of ${name} holds`).to.be.a('string');
  const vlans = await vlansOfPort(scenarioNetns(this), tap!);
  expect(vlans.map((v) => v.vlan), `VLANs of ${tap}`).to.deep.equal([vlan]);
  expect(vlans[0]!.flags, `flags of VLAN ${vlan} on ${tap}`).to.include.members(['PVID', 'Egress Untagged']);
});

Then('the guest of {string} says on its console that it got the lease of {ip} from {ip}', async function (this: VmanWorld, name: string, address: string, server: string) {
  const line = await waitForConsoleLine(path.join((await recordedVm(this, name)).dir, 'serial.log'), 'udhcpc: lease of', { timeoutMs: 10_000 });
  expect(line, "the guest's DHCP client on its serial console").to.match(new RegExp(`^udhcpc: lease of ${address.replaceAll('.', '\\.')} obtained from ${server.replaceAll('.', '\\.')},`));
});
