// A template whose files sit in a folder with a character in its name that
// means something to QEMU ("=", ":"), and what QEMU was given for a VM made
// from it: the kernel and initrd arguments from /proc, the backing file of the
// VM's root disk from QMP on its second monitor.
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { VmanWorld } from '../world/vman-world.ts';
import { qemuOfVm } from './proc-reader.ts';
import { withQmp } from './qmp-reader.ts';
import { recordedVm } from './vm-facts.ts';
import { expectStatus } from './vm-tasks.ts';

export interface BootFiles {
  folder: string;
  kernel: string;
  initrd: string;
  baseImage: string;
}

/** Copies the test guest's kernel and initrd into <scenario>/images/<folder> and makes a small qcow2 base image beside them. */
export async function bootFilesIn(world: VmanWorld, folderName: string): Promise<BootFiles> {
  const folder = path.join(world.storage, 'images', folderName);
  await mkdir(folder, { recursive: true });
  const files: BootFiles = { folder, kernel: path.join(folder, 'vmlinuz'), initrd: path.join(folder, 'initrd.img'), baseImage: path.join(folder, 'base.qcow2') };
  await copyFile(world.host.guest.kernel, files.kernel);
  await copyFile(world.host.guest.initrd, files.initrd);
  await execa(world.host.qemuImg.path, ['create', '-q', '-f', 'qcow2', files.baseImage, '64M']);
  (world.notes.bootFiles ??= Object.create(null) as Record<string, BootFiles>)[folderName] = files;
  return files;
}

export function bootFilesOf(world: VmanWorld, folderName: string): BootFiles {
  const files = world.notes.bootFiles?.[folderName];
  if (!files) throw new Error(`no boot files were put in a folder named ${folderName} in this scenario`);
  return files;
}

/** The only boot files of the scenario (one folder per scenario). */
function theBootFiles(world: VmanWorld): BootFiles {
  const all = Object.values(world.notes.bootFiles ?? {});
  if (all.length !== 1) throw new Error(`expected the boot files of one folder in this scenario, found ${all.length}`);
  return all[0]!;
}

/** A template of the boot files: kernel, initrd, the guest's command line and the base image (qcow2). */
export async function templateOfBootFiles(world: VmanWorld, name: string): Promise<void> {
  const f = theBootFiles(world);
  const res = await world.api().http.post('api/v1/templates', {
    json: {
      name, cpus: 1, memory_mb: 512, kernel_path: f.kernel, initrd_path: f.initrd, cmdline: world.host.guest.cmdline,
      base_image_path: f.baseImage, base_image_format: 'qcow2',
    },
  });
  const t = expectStatus<{ id: string }>(res, 201, `create template ${name} from ${f.folder}`);
  world.ids.set(`template:${name}`, t.id);
}

/** The argument that follows `option` in the command line of the VM's QEMU, read from /proc. */
export async function qemuArgument(world: VmanWorld, vm: string, option: string): Promise<string | undefined> {
  const rec = await recordedVm(world, vm);
  const proc = await qemuOfVm(rec.id, rec.dir);
  if (!proc) throw new Error(`no QEMU runs the VM ${vm} (${rec.id})`);
  const i = proc.argv.indexOf(option);
  return i >= 0 ? proc.argv[i + 1] : undefined;
}

/** The backing file of the VM's root disk (root.qcow2 in its folder), as QMP's query-block reports it both ways. */
export async function rootDiskBacking(world: VmanWorld, vm: string): Promise<{ backingFile?: string; backingImage?: string }> {
  const rec = await recordedVm(world, vm);
  const rootFile = path.join(rec.dir, 'root.qcow2');
  const blocks = await withQmp(rec.dir, (qmp) => qmp.execute<Array<{ inserted?: { file?: string; backing_file?: string; image?: { 'backing-image'?: { filename?: string } } } }>>('query-block'));
  const root = blocks.find((b) => b.inserted?.file === rootFile);
  if (!root?.inserted) throw new Error(`QEMU of ${vm} has no block device on ${rootFile}: ${JSON.stringify(blocks.map((b) => b.inserted?.file))}`);
  const out: { backingFile?: string; backingImage?: string } = {};
  if (root.inserted.backing_file !== undefined) out.backingFile = root.inserted.backing_file;
  const image = root.inserted.image?.['backing-image']?.filename;
  if (image !== undefined) out.backingImage = image;
  return out;
}
