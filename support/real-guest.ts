// What an operator does with a real distribution guest, done the way they do
// it: an SSH key pair of their own, `ssh -p <port>` with the OpenSSH client,
// a file system made and mounted inside the guest; and the evidence of a clean
// shutdown read from the root file system itself after the stop.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { VmanWorld } from '../world/vman-world.ts';
import type { DebianImage } from './host.ts';
import { pollUntil } from './poll.ts';
import { withGuestAgent } from './guest-agent.ts';
import { requireGuestDisk } from './disk-facts.ts';

export function debianImage(world: VmanWorld): DebianImage {
  const d = world.host.debian;
  if (!d) throw new Error('the Debian guest is not built (guest/build-debian.sh; ./setup.sh builds it)');
  return d;
}

export interface KeyPair { privateKey: string; publicKey: string }

/** An ed25519 key pair made with ssh-keygen in the scenario's folder, as an operator makes one. */
export async function operatorKeyPair(world: VmanWorld): Promise<KeyPair> {
  const existing = world.notes.sshKeyPair;
  if (existing) return existing;
  const dir = path.join(world.storage, 'ssh');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const privateKey = path.join(dir, 'id_ed25519');
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'operator@vman-suite', '-f', privateKey]);
  const pair = { privateKey, publicKey: (await readFile(`${privateKey}.pub`, 'utf8')).trim() };
  world.notes.sshKeyPair = pair;
  return pair;
}

/**
 * Runs a command in the guest over SSH as its default user, through the port
 * the database says is forwarded to it, with the operator's key; retries until
 * the guest lets the key in (cloud-init installs it while sshd may already run).
 */
export async function sshRun(world: VmanWorld, vm: string, command: string, timeoutMs = 90_000): Promise<string> {
  const row = await world.db().vmByName(vm);
  const port = row?.ssh_port;
  if (typeof port !== 'number') throw new Error(`the database has no SSH port for ${vm} (state ${String(row?.state)})`);
  const { privateKey } = await operatorKeyPair(world);
  const user = debianImage(world).user;
  return pollUntil(`an SSH session to ${user}@127.0.0.1:${port} (${vm}) to run ${command}`, async () => {
    const r = await execa('ssh', [
      '-i', privateKey, '-p', String(port), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR', `${user}@127.0.0.1`, command,
    ], { reject: false, timeout: 30_000 });
    return r.exitCode === 0 ? { done: true, value: r.stdout.trim() } : { done: false, seen: `exit ${r.exitCode}: ${r.stderr.trim().split('\n').at(-1) ?? ''}` };
  }, { timeoutMs, intervalMs: 1_000 });
}

const MOUNT = '/mnt/vman-data';

/** In the guest: an ext4 file system on the disk, mounted, a file written and synced, unmounted. Returns what was written. */
export async function guestFormatsAndWrites(vmDir: string, diskId: string): Promise<string> {
  const text = `written by the guest ${randomBytes(6).toString('hex')}`;
  await withGuestAgent(vmDir, async (ga) => {
    const dev = (await requireGuestDisk(ga, diskId)).path;
    const script = `set -e; mkfs.ext4 -q -F "$1"; mkdir -p ${MOUNT}; mount "$1" ${MOUNT}; printf '%s' "$2" > ${MOUNT}/note; sync; umount ${MOUNT}`;
    const r = await ga.exec('/bin/sh', ['-c', script, 'format', dev, text], { timeoutMs: 60_000 });
    if (r.exitCode !== 0) throw new Error(`the guest could not format and write ${dev} (exit ${r.exitCode}): ${r.stderr}`);
  }, 10_000);
  return text;
}

/** In the guest: the disk mounted, its file read, unmounted. */
export async function guestReadsNote(vmDir: string, diskId: string): Promise<string> {
  return withGuestAgent(vmDir, async (ga) => {
    const dev = (await requireGuestDisk(ga, diskId)).path;
    const r = await ga.exec('/bin/sh', ['-c', `set -e; mkdir -p ${MOUNT}; mount "$1" ${MOUNT}; cat ${MOUNT}/note; umount ${MOUNT}`, 'read', dev], { timeoutMs: 60_000 });
    if (r.exitCode !== 0) throw new Error(`the guest could not mount and read ${dev} (exit ${r.exitCode}): ${r.stderr}`);
    return r.stdout;
  }, 10_000);
}

export interface Ext4State {
  /** s_state has EXT4_VALID_FS: unmounted cleanly (or never mounted read-write). */
  valid: boolean;
  /** The journal needs replaying (INCOMPAT_RECOVER): the file system was not cleanly unmounted. */
  needsRecovery: boolean;
}

/** The ext4 superblock of a VM's root disk (its overlay), read with qemu-img after the stop into a scratch folder of the scenario's. */
export async function rootFsState(vmDir: string, scratch: string): Promise<Ext4State> {
  const out = path.join(scratch, `${path.basename(vmDir)}-superblock.raw`);
  // The first 2 KiB (qemu-img dd makes an empty file when told to skip): the superblock is the second.
  await execa('qemu-img', ['dd', '-U', '-f', 'qcow2', '-O', 'raw', 'bs=1024', 'count=2', `if=${path.join(vmDir, 'root.qcow2')}`, `of=${out}`]);
  const sb = (await readFile(out)).subarray(1024, 2048);
  if (sb.readUInt16LE(0x38) !== 0xef53) throw new Error(`no ext4 superblock on the root disk of ${vmDir} (magic ${sb.readUInt16LE(0x38).toString(16)})`);
  return { valid: (sb.readUInt16LE(0x3a) & 1) === 1, needsRecovery: (sb.readUInt32LE(0x60) & 0x4) !== 0 };
}
