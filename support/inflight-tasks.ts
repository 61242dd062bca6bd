// Creates in flight when vman is killed: what each request got back (an answer
// or nothing), and, after vman is started again, whether every create that was
// answered 201 is there, complete: its row under the id it was answered with,
// its folder and seed (a VM), its file accepted by `qemu-img check` (a disk).
import { access } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { VmanWorld } from '../world/vman-world.ts';
import type { ChildVman } from '../world/vman-service.ts';

export interface InFlightCreate {
  kind: 'disk' | 'vm';
  name: string;
  /** The HTTP status, or undefined when vman died before it answered. */
  status?: number;
  /** The id the answer gave. */
  id?: string;
  /** Why there was no answer. */
  error?: string;
}

/** Sends the creates at once and SIGKILLs vman as soon as the first answer comes. */
export async function createWhileKilled(world: VmanWorld, child: ChildVman, disks: number, vms: number): Promise<InFlightCreate[]> {
  const http = world.api().http;
  const send = (kind: 'disk' | 'vm', name: string, json: object): Promise<InFlightCreate> =>
    http.post(`api/v1/${kind}s`, { json }).then(
      (res) => {
        const id = (res.body as { id?: unknown } | undefined)?.id;
        return { kind, name, status: res.statusCode, ...(typeof id === 'string' ? { id } : {}) };
      },
      (err: Error) => ({ kind, name, error: err.message }),
    );
  const requests = [
    ...Array.from({ length: disks }, (_, i) => send('disk', `inflight-disk-${i}`, { name: `inflight-disk-${i}`, size_gb: 1 })),
    ...Array.from({ length: vms }, (_, i) => send('vm', `inflight-vm-${i}`, { name: `inflight-vm-${i}`, template: 'small' })),
  ];
  // Kill as soon as the first answer arrives: the rest are in flight.
  await Promise.race(requests);
  await child.kill('SIGKILL');
  return Promise.all(requests);
}

/** What is missing or broken of each create answered 201, in words; empty when all are complete. */
export async function incompleteCreates(world: VmanWorld, answered: InFlightCreate[]): Promise<string[]> {
  const out: string[] = [];
  for (const c of answered) {
    const row = await world.db().one(`SELECT * FROM ${c.kind === 'vm' ? 'vms' : 'disks'} WHERE id = ?`, [c.id ?? '']);
    if (!row) { out.push(`${c.kind} ${c.name} was answered 201 as ${c.id} but has no row`); continue; }
    if (row.name !== c.name) out.push(`${c.kind} ${c.id} is recorded as ${String(row.name)}, not ${c.name}`);
    if (c.kind === 'vm') {
      const dir = String(row.storage_dir);
      for (const f of [dir, path.join(dir, 'seed.iso')]) {
        if (!(await access(f).then(() => true, () => false))) out.push(`VM ${c.name} was answered 201 but ${f} is missing`);
      }
    } else {
      const check = await execa('qemu-img', ['check', '-f', 'qcow2', String(row.path)], { reject: false });
      if (check.exitCode !== 0) out.push(`disk ${c.name}: qemu-img check of ${String(row.path)} exited ${check.exitCode}: ${(check.stderr || check.stdout).slice(0, 300)}`);
    }
  }
  return out;
}

export function describeCreates(creates: InFlightCreate[]): string {
  const answered = creates.filter((c) => c.status !== undefined);
  return `${answered.length} of ${creates.length} create(s) were answered (${answered.map((c) => `${c.name} ${c.status}`).join(', ') || 'none'}); ` +
    `${creates.length - answered.length} were cut off`;
}
