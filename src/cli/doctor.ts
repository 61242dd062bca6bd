// `vman doctor`: what this host can do, checked here (not over the API), with
// the same probes `vman serve` runs at start-up, so the two never disagree.
import { constants } from 'node:fs';
import { access, statfs } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { ConfigError, loadConfig, type VmanConfig } from '../config.ts';
import { decideAccelerator } from '../host/accel-probe.ts';
import { findQemuImg, findQemuSystem, formatVersion, type Binary } from '../host/binaries.ts';
import { defaultGuestDir, describeGuest, loadGuestImage, type GuestImage } from '../host/guest-image.ts';
import { MIN_FREE_BYTES } from '../host/probe.ts';
import { CliFailure, ctxOf } from './context.ts';
import { closedToOthers, Confinement } from '../operator/confinement.ts';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** A failed required check means VMs cannot start. */
  required: boolean;
}

const exists = (p: string, mode = constants.F_OK): Promise<boolean> => access(p, mode).then(() => true, () => false);
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

async function binary(name: string, find: () => Promise<Binary>): Promise<[Check, Binary | undefined]> {
  try {
    const b = await find();
    return [{ name, ok: true, detail: `${formatVersion(b.version)} (${b.path})`, required: true }, b];
  } catch (err) {
    return [{ name, ok: false, detail: message(err), required: true }, undefined];
  }
}

export async function runChecks(config: VmanConfig): Promise<Check[]> {
  const checks: Check[] = [];
  const [qemuCheck, qemu] = await binary('qemu', findQemuSystem);
  const [imgCheck] = await binary('qemu-img', findQemuImg);
  checks.push(qemuCheck, imgCheck);

  let guest: GuestImage | undefined;
  try {
    guest = await loadGuestImage(config.guestDir);
    checks.push({ name: 'guest image', ok: true, detail: describeGuest(guest), required: true });
  } catch (err) {
    checks.push({ name: 'guest image', ok: false, detail: message(err), required: true });
  }

  if (!qemu || !guest) {
    checks.push({ name: 'accelerator', ok: false, detail: `not decided: ${!qemu ? 'QEMU' : 'the guest image'} is missing`, required: true });
  } else {
    try {
      const a = await decideAccelerator({ qemu, guest, requested: config.accel });
      checks.push({ name: 'accelerator', ok: true, detail: `${a.accel.toUpperCase()}: ${a.reason}${a.fromCache ? ' [cached decision]' : ''}`, required: true });
    } catch (err) {
      checks.push({ name: 'accelerator', ok: false, detail: message(err), required: true });
    }
  }

  const storage = config.storagePath;
  // Storage that does not exist yet is made by `vman serve`; its free space is the nearest existing parent's.
  let probeDir = storage;
  while (!(await exists(probeDir)) && path.dirname(probeDir) !== probeDir) probeDir = path.dirname(probeDir);
  const fs = await statfs(probeDir);
  const free = fs.bavail * fs.bsize;
  checks.push({
    name: 'storage', ok: free >= MIN_FREE_BYTES, required: true,
    detail: `${storage}${probeDir === storage ? '' : ' (not made yet)'}: ${(free / 1024 ** 3).toFixed(1)} GB free; vman needs at least 1 GB`,
  });

  const guestDir = guest?.dir ?? config.guestDir ?? defaultGuestDir();
  const imageDirs = config.imageDirs ?? [path.join(storage, 'images'), guestDir];
  for (const dir of imageDirs) {
    const there = await exists(dir);
    checks.push({ name: 'image directory', ok: there, detail: `${dir}${there ? '' : ' does not exist'}`, required: false });
  }

  const root = process.getuid?.() === 0;
  const tun = await exists('/dev/net/tun', constants.R_OK | constants.W_OK);
  const bridged = config.network.mode === 'bridge';
  checks.push({ name: 'root', ok: root, detail: root ? 'running as root' : `running as uid ${process.getuid?.() ?? '?'}`, required: false });
  checks.push({
    name: 'tap devices', ok: root && tun, required: bridged,
    detail: `${root && tun ? 'can make tap devices' : `cannot make tap devices (${!root ? 'not root' : '/dev/net/tun not usable'})`}; network mode ${config.network.mode}${bridged ? ' needs them' : ' does not'}`,
  });
  checks.push(...(await confinementChecks(config, storage, [guestDir, ...imageDirs])));
  return checks;
}

/** Who QEMU runs as, its sandbox and limits, and whether a VM's own user can reach what it must (vman as root). */
async function confinementChecks(config: VmanConfig, storage: string, readDirs: string[]): Promise<Check[]> {
  const c = await Confinement.create({
    ...(config.qemuUidRange ? { uidRange: config.qemuUidRange } : {}), allowUnlimited: config.allowUnlimited, needsTun: config.network.mode === 'bridge',
  });
  const s = c.summary();
  const checks: Check[] = [
    { name: 'confinement', ok: true, required: false, detail: `${s.mode}: ${s.user}; ${s.sandbox}` },
    { name: 'limits', ok: s.refusal === null, required: true, detail: s.refusal ?? s.limits },
  ];
  if (!c.perVmUser) return checks;
  // A VM's user passes through the storage's parents to its folder, and reads kernels and base images.
  const blocked = await firstClosedParent(storage);
  checks.push({ name: 'storage reach', ok: blocked === undefined, required: true, detail: blocked ?? `a VM's own user can pass through to ${storage}` });
  for (const dir of [...new Set(readDirs)]) {
    const closed = await firstClosedParent(dir, 0o005);
    checks.push({ name: 'image reach', ok: closed === undefined, required: false, detail: closed ?? `a VM's own user can read ${dir}` });
  }
  return checks;
}

/** The first folder from `dir` up that keeps a VM's own user out, in words; undefined if none. */
async function firstClosedParent(dir: string, need = 0o001): Promise<string | undefined> {
  const closed = await closedToOthers(dir, need);
  return closed && `${closed.dir} (mode ${closed.mode.toString(8)}) keeps a VM's own user out of ${dir}`;
}

export function doctorCommand(program: Command): void {
  program.command('doctor').description('check what this host can do (locally, from VMAN_* settings): exit 0 when VMs can start')
    .action(async (_o, cmd: Command) => {
      const { json } = ctxOf(cmd);
      let config: VmanConfig;
      try {
        config = loadConfig(process.env);
      } catch (err) {
        if (err instanceof ConfigError) throw new CliFailure(err.message, 2);
        throw err;
      }
      const checks = await runChecks(config);
      const blocking = checks.filter((c) => c.required && !c.ok);
      if (json) {
        process.stdout.write(`${JSON.stringify({ can_start_vms: blocking.length === 0, checks }, null, 2)}\n`);
      } else {
        const width = Math.max(...checks.map((c) => c.name.length));
        for (const c of checks) process.stdout.write(`${c.ok ? 'ok  ' : c.required ? 'FAIL' : 'warn'}  ${c.name.padEnd(width)}  ${c.detail}\n`);
      }
      if (blocking.length > 0) throw new CliFailure(`VMs cannot start: ${blocking.map((c) => `${c.name}: ${c.detail}`).join('; ')}`);
      if (!json) process.stdout.write('VMs can start\n');
    });
}
