// What confines a VM's QEMU, read by the suite itself: /proc/<pid>/status,
// the host's user and group files, owners, modes and ACLs of files (stat,
// getfacl), the kernel's audit log (dmesg), and QEMU's own answers over the
// VM's second monitor.
import { lstat, readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { pollUntil } from './poll.ts';
import { QmpReaderError, withQmp } from './qmp-reader.ts';

export interface ProcessCredentials {
  /** Real, effective, saved and file-system uid. */
  uids: number[];
  gids: number[];
  groups: number[];
  capEff: bigint;
  capPrm: bigint;
  noNewPrivs: number;
  /** 0 none, 1 strict, 2 filter. */
  seccomp: number;
}

export async function credentialsOf(pid: number): Promise<ProcessCredentials> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): string => {
    const m = new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status);
    if (!m) throw new Error(`/proc/${pid}/status has no ${name} line`);
    return m[1]!.trim();
  };
  const numbers = (name: string): number[] => field(name).split(/\s+/).filter(Boolean).map(Number);
  return {
    uids: numbers('Uid'), gids: numbers('Gid'), groups: numbers('Groups'),
    capEff: BigInt(`0x${field('CapEff')}`), capPrm: BigInt(`0x${field('CapPrm')}`),
    noNewPrivs: Number(field('NoNewPrivs')), seccomp: Number(field('Seccomp')),
  };
}

/** The numeric ids in the host's /etc/passwd (users) or /etc/group (groups). */
export async function hostIds(file: '/etc/passwd' | '/etc/group'): Promise<Set<number>> {
  const text = await readFile(file, 'utf8');
  return new Set(text.split('\n').filter(Boolean).map((l) => Number(l.split(':')[2])));
}

export interface FileOwnership {
  uid: number;
  gid: number;
  /** Permission bits, e.g. 0o600. */
  mode: number;
}

export async function ownershipOf(file: string): Promise<FileOwnership> {
  const st = await lstat(file);
  return { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
}

export const octal = (mode: number): string => `0${mode.toString(8)}`;

/** A file's ACL as getfacl prints it numerically: its named-user entries (uid → effective permissions) and the base entries. */
export async function aclOf(file: string): Promise<{ users: Map<number, string>; owner: string; group: string; other: string; mask?: string }> {
  const { stdout } = await execa('getfacl', ['-p', '-n', '-E', file]);
  const users = new Map<number, string>();
  let owner = '';
  let group = '';
  let other = '';
  let mask: string | undefined;
  for (const line of stdout.split('\n')) {
    const [kind, who, perms] = line.trim().split(':');
    if (perms === undefined) continue;
    if (kind === 'user' && who === '') owner = perms;
    else if (kind === 'user') users.set(Number(who), perms);
    else if (kind === 'group' && who === '') group = perms;
    else if (kind === 'other') other = perms;
    else if (kind === 'mask') mask = perms;
  }
  return { users, owner, group, other, ...(mask === undefined ? {} : { mask }) };
}

/** Effective permissions of a named user: the entry as the mask lets it through. */
export function effective(perms: string, mask: string | undefined): string {
  if (mask === undefined) return perms;
  return [...perms].map((c, i) => (mask[i] === c ? c : '-')).join('');
}

/**
 * Asks QEMU, over the VM's second monitor, to open a host file read-only as a
 * block node (what a guest that escaped into QEMU could ask). Returns QEMU's
 * error, or undefined if it opened it (the node is deleted again).
 */
export async function qemuOpenRefusal(vmDir: string, file: string): Promise<string | undefined> {
  return withQmp(vmDir, async (qmp) => {
    const node = `suite-probe-${Date.now().toString(36)}`;
    try {
      await qmp.execute('blockdev-add', { driver: 'file', 'node-name': node, filename: file, 'read-only': true });
    } catch (err) {
      if (err instanceof QmpReaderError) return err.message;
      throw err;
    }
    await qmp.execute('blockdev-del', { 'node-name': node });
    return undefined;
  });
}

/**
 * The kernel's audit record of a process killed by seccomp (type=1326), as
 * dmesg prints it: `... uid=U gid=G ... pid=P comm="..." ... sig=31 ...`.
 */
export async function seccompKillRecord(pid: number, timeoutMs = 5_000): Promise<{ uid: number; sig: number; syscall: number; line: string }> {
  return pollUntil(`the kernel's audit record of pid ${pid} killed by seccomp`, async () => {
    const { stdout } = await execa('dmesg', [], { reject: false });
    const line = stdout.split('\n').find((l) => l.includes('type=1326') && new RegExp(`\\bpid=${pid}\\b`).test(l));
    if (!line) return { done: false, seen: `${stdout.split('\n').filter((l) => l.includes('type=1326')).length} seccomp records in the kernel log, none of pid ${pid}` };
    const num = (key: string): number => Number(new RegExp(`\\b${key}=(\\d+)`).exec(line)?.[1] ?? NaN);
    return { done: true, value: { uid: num('uid'), sig: num('sig'), syscall: num('syscall'), line: line.trim() } };
  }, { timeoutMs, intervalMs: 200 });
}
