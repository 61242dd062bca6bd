// Facts the bad-input feature checks after requests that created or raced:
// from the database (sqlite3 reader), /proc and QMP on a VM's second monitor,
// each returning what is wrong in words (empty when nothing is).
import type { VmanWorld } from '../world/vman-world.ts';
import { blockNamesOf } from './block-names.ts';
import { qemuNameIn, qemusUnder } from './proc-reader.ts';
import { qemuBlockView } from './qmp-reader.ts';
import { recordedVm } from './vm-facts.ts';
import { createdOneAfterAnother, rowsNamed, storageGainedBeyond } from './validation-names.ts';
import { raceEntries, raceWinner } from './race-tasks.ts';
import type { Kind } from './validation-tables.ts';

const idOf = (body: unknown): string | undefined => (body as { id?: string } | undefined)?.id;

/** Each create made one after another got `status`. */
export function createsNotAnswered(world: VmanWorld, status: number): string[] {
  return createdOneAfterAnother(world).filter((a) => a.statusCode !== status).map((a) => `the create of ${a.name} got ${a.statusCode}: ${JSON.stringify(a.body)}`);
}

/** Each of the names is recorded once, under the id its create answered with, and the ids differ. */
export async function namesNotRecordedApart(world: VmanWorld, kind: Kind, names: string[]): Promise<string[]> {
  const answers = createdOneAfterAnother(world);
  const flaws: string[] = [];
  const ids = new Set<string>();
  for (const name of names) {
    const answered = idOf(answers.find((a) => a.name === name)?.body);
    const recorded = (await rowsNamed(world, kind, name)).map((r) => String(r.id));
    if (recorded.length !== 1 || recorded[0] !== answered) flaws.push(`${name}: recorded as ${JSON.stringify(recorded)}, answered as ${answered}`);
    if (answered) ids.add(answered);
  }
  if (ids.size !== names.length) flaws.push(`the ids are not all different: ${[...ids].join(', ')}`);
  return flaws;
}

/** What the storage folder gained beyond what the records created one after another have. */
export function storageGainedBeyondCreated(world: VmanWorld, kind: Kind, names: string[]): Promise<string[]> {
  const ids = createdOneAfterAnother(world).filter((a) => names.includes(a.name)).map((a) => idOf(a.body)).filter((id): id is string => id !== undefined);
  return storageGainedBeyond(world, kind, ids);
}

/** The create that won a race is the one record with that name. */
export async function notOneRecordOfWinner(world: VmanWorld, kind: Kind, name: string): Promise<string[]> {
  const winner = idOf(raceWinner(world, 'create').body);
  const recorded = (await rowsNamed(world, kind, name)).map((r) => String(r.id));
  return recorded.length === 1 && recorded[0] === winner ? [] : [`${kind}s named ${name} in the database: ${JSON.stringify(recorded)}; the create that succeeded made ${winner}`];
}

/** What the storage folder gained beyond what the winner of a create race has. */
export function storageGainedBeyondWinner(world: VmanWorld, kind: Kind): Promise<string[]> {
  return storageGainedBeyond(world, kind, [idOf(raceWinner(world, 'create').body)!]);
}

/** The template a VM is recorded as made from. */
export async function templateIdOfVm(world: VmanWorld, vm: string): Promise<unknown> {
  return (await world.db().vmByName(vm))?.template_id;
}

/** The QEMU processes named after the VM (from /proc), and the pid recorded for it. */
export async function qemuProcessesOf(world: VmanWorld, vm: string): Promise<{ pids: number[]; recorded: number | null }> {
  const rec = await recordedVm(world, vm);
  const pids = (await qemusUnder(world.storage)).filter((p) => qemuNameIn(p.argv) === `vman-${rec.id}`).map((p) => p.pid);
  return { pids, recorded: rec.pid };
}

/** Whether the QEMU of each VM that took part in an attach race holds the disk's device, by VM. */
export async function diskDeviceHeldBy(world: VmanWorld, disk: string): Promise<{ winner: boolean; loser: boolean }> {
  const winner = raceWinner(world, 'attach');
  const loser = raceEntries(world).find((e) => e.what === 'attach' && e !== winner)!;
  const { device } = blockNamesOf(world.idOf(disk));
  const holds = async (vm: string): Promise<boolean> => (await qemuBlockView((await recordedVm(world, vm)).dir)).devices.includes(device);
  return { winner: await holds(winner.label), loser: await holds(loser.label) };
}
