// The test guest booted by the suite itself, with a QEMU command line of the
// suite's own (no vman code): the smoke feature proves the guest image and
// this host before any feature proves vman with it.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { SuiteHost } from './host.ts';
import { pollUntil } from './poll.ts';
import { isAlive, signal, waitForExit } from './proc-reader.ts';
import { withGuestAgent } from './guest-agent.ts';
import { withQmp } from './qmp-reader.ts';

export interface BareGuest {
  name: string;
  dir: string;
  pid: number;
  address: string;
  files: { serialLog: string; qmp: string; qmpAux: string; guestAgent: string; pidfile: string };
  /** Milliseconds from launch to the guest agent's first answer. */
  bootMs?: number;
}

export async function bootBareGuest(host: SuiteHost, dir: string, name: string, address: string): Promise<BareGuest> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files = {
    serialLog: path.join(dir, 'serial.log'), qmp: path.join(dir, 'qmp.sock'), qmpAux: path.join(dir, 'qmp-aux.sock'),
    guestAgent: path.join(dir, 'ga.sock'), pidfile: path.join(dir, 'qemu.pid'),
  };
  const mac = `52:54:00:${randomBytes(3).toString('hex').match(/../g)!.join(':')}`;
  const g = host.guest;
  await execa(host.qemu.path, [
    '-name', `suite-${name}`, '-machine', `pc,accel=${host.accel}`, '-cpu', host.accel === 'kvm' ? 'host' : 'max',
    '-smp', '1', '-m', '512', '-nodefaults', '-no-user-config', '-display', 'none', '-vga', 'none', '-no-reboot',
    '-kernel', g.kernel, '-initrd', g.initrd, '-append', g.cmdline,
    '-serial', `file:${files.serialLog}`,
    '-chardev', `socket,id=qmp,path=${files.qmp},server=on,wait=off`, '-mon', 'chardev=qmp,mode=control',
    '-chardev', `socket,id=qmp-aux,path=${files.qmpAux},server=on,wait=off`, '-mon', 'chardev=qmp-aux,mode=control',
    '-device', 'virtio-serial-pci,id=vser0',
    '-chardev', `socket,id=ga,path=${files.guestAgent},server=on,wait=off`,
    '-device', 'virtserialport,bus=vser0.0,chardev=ga,name=org.qemu.guest_agent.0',
    '-netdev', `user,id=net0,net=10.0.2.0/24,dhcpstart=${address},restrict=on`, '-device', `virtio-net-pci,netdev=net0,mac=${mac}`,
    '-pidfile', files.pidfile, '-daemonize',
  ]);
  const pid = Number.parseInt(await readFile(files.pidfile, 'utf8'), 10);
  return { name, dir, pid, address, files };
}

/** Polls until the guest agent answers a ping; returns how long the guest took since launch. */
export async function waitForGuestAgent(g: BareGuest, timeoutMs: number): Promise<number> {
  const started = Date.now();
  await pollUntil(`the guest agent of ${g.name} to answer`, async () => {
    if (!(await isAlive(g.pid))) throw new Error(`QEMU ${g.pid} of ${g.name} exited`);
    await withGuestAgent(g.dir, (ga) => ga.ping(1_000), 1_500);
    return { done: true, value: undefined };
  }, { timeoutMs, intervalMs: 100 });
  return Date.now() - started;
}

/** The ACPI power button; returns how QEMU ended: powerdown when the guest acted on it within 20 s. */
export async function powerOff(g: BareGuest): Promise<'powerdown' | 'kill'> {
  await withQmp(g.dir, (qmp) => qmp.execute('system_powerdown'));
  if (await waitForExit(g.pid, 20_000)) return 'powerdown';
  signal(g.pid, 'SIGKILL');
  await waitForExit(g.pid, 10_000);
  return 'kill';
}

/** Ends it however it is; safe to call twice. */
export async function killBareGuest(g: BareGuest): Promise<void> {
  signal(g.pid, 'SIGKILL');
  if (!(await waitForExit(g.pid, 10_000))) throw new Error(`QEMU ${g.pid} of ${g.name} survived SIGKILL`);
}
