// `vman vm ...`: list, show, create (from a template, or a clone of a
// snapshot), start, stop, restart, rm, console, top (top.ts), ssh; `vman vm snapshot ...`
// is in snapshot-commands.ts.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError, type Command } from 'commander';
import { CliFailure, ctxOf, describe } from './context.ts';
import { removeCommand, resolveRef } from './resolve.ts';
import { formatTable, output } from './table.ts';
import { topCommand } from './top.ts';

/** A VM as the API gives it (the fields the command reads). */
export interface VmJson {
  id: string;
  name: string;
  template_id: string;
  template: string | null;
  state: string;
  state_reason: string | null;
  pid: number | null;
  address: string | null;
  ssh_port: number | null;
  mac: string | null;
  storage_dir: string;
  origin_snapshot?: { vm_id: string; name: string } | null;
  resumes_snapshot?: boolean;
  created_at: string;
  updated_at: string;
}

interface ConsoleJson {
  offset: number;
  next_offset: number;
  data: string;
}

export const vmTable = (vms: VmJson[]): string =>
  formatTable(['NAME', 'ID', 'STATE', 'ADDRESS', 'SSH', 'TEMPLATE'], vms.map((v) => [v.name, v.id, v.state, v.address, v.ssh_port, v.template ?? v.template_id]));

const vmDetails = (v: VmJson): string =>
  describe([
    ['name', v.name], ['id', v.id], ['state', v.state], ['reason', v.state_reason], ['template', v.template ?? v.template_id],
    ['address', v.address], ['ssh port', v.ssh_port], ['mac', v.mac], ['pid', v.pid], ['storage', v.storage_dir],
    // A clone: the snapshot it stands on, and whether its next start resumes it.
    ...(v.origin_snapshot ? [['cloned from', `${v.origin_snapshot.vm_id}@${v.origin_snapshot.name}${v.resumes_snapshot ? ' (its first start resumes it)' : ''}`] as [string, unknown]] : []),
    ['created', v.created_at], ['updated', v.updated_at],
  ]);

/** A snapshot named on the command line: `VM@SNAPSHOT`. */
export interface SnapshotRef {
  vm: string;
  name: string;
}

/** `--from` takes `VM@SNAPSHOT` (neither a VM's nor a snapshot's name has an "@"): anything else is a usage error (exit 2). */
export function snapshotRef(value: string): SnapshotRef {
  const m = /^([^@]+)@([^@]+)$/.exec(value);
  if (!m) throw new InvalidArgumentError(`${JSON.stringify(value)} is not VM@SNAPSHOT (e.g. web@warm)`);
  return { vm: m[1]!, name: m[2]! };
}

/** `--ssh-key` takes a key or a file holding keys (one a line). */
async function sshKeys(values: string[]): Promise<string[]> {
  const keys: string[] = [];
  for (const v of values) {
    if (/^(ssh-|ecdsa-|sk-)/.test(v.trim())) {
      keys.push(v.trim());
      continue;
    }
    const text = await readFile(v, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new CliFailure(`--ssh-key ${v}: neither a public key nor a readable file (${err.code ?? err.message})`);
    });
    keys.push(...text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')));
  }
  return keys;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** Adds `vman vm ...`; the `vm` command, under which snapshot-commands.ts adds its own. */
export function vmCommands(program: Command): Command {
  const vm = program.command('vm').description('manage virtual machines');

  vm.command('list').description('list VMs').action(async (_o, cmd: Command) => {
    const { client, json } = ctxOf(cmd);
    const vms = await client.get<VmJson[]>('/vms');
    output(json, vms, () => vmTable(vms));
  });

  vm.command('show').description('show one VM').argument('<vm>', 'name or id').action(async (ref: string, _o, cmd: Command) => {
    const { client, json } = ctxOf(cmd);
    const v = await resolveRef<VmJson>(client, 'vms', ref);
    output(json, v, () => vmDetails(v));
  });

  vm.command('create').description('create a VM from a template, or a clone of a snapshot (it stays stopped until `vm start`)')
    .argument('<name>', 'the new VM\'s name')
    .option('--template <template>', 'template name or id')
    .option('--from <vm@snapshot>', 'clone this snapshot of a VM (one with memory: the clone\'s first start resumes it); the clone has its origin\'s template', snapshotRef)
    .option('--ssh-key <key-or-file>', 'a public key, or a file of keys; repeatable', collect, [])
    .option('--user-data <file>', 'cloud-init user-data file')
    .action(async (name: string, o: { template?: string; from?: SnapshotRef; sshKey: string[]; userData?: string }, cmd: Command) => {
      if (o.template === undefined && o.from === undefined) {
        cmd.error('error: vm create needs --template <template>, or --from <vm@snapshot> to clone a snapshot', { exitCode: 2, code: 'vman.missingOrigin' });
      }
      const { client, json } = ctxOf(cmd);
      const body: Record<string, unknown> = { name };
      if (o.template !== undefined) body.template = o.template;
      if (o.from !== undefined) {
        // Resolved on the client, as every VM named on the command line is.
        const origin = await resolveRef<VmJson>(client, 'vms', o.from.vm);
        body.from_snapshot = { vm: origin.id, name: o.from.name };
      }
      if (o.sshKey.length > 0) body.ssh_keys = await sshKeys(o.sshKey);
      if (o.userData !== undefined) {
        body.user_data = await readFile(o.userData, 'utf8').catch((err: NodeJS.ErrnoException) => {
          throw new CliFailure(`--user-data ${o.userData}: ${err.code ?? err.message}`);
        });
      }
      const v = await client.post<VmJson>('/vms', body);
      output(json, v, () => vmDetails(v));
    });

  const action = (verb: 'start' | 'stop' | 'restart', what: string) =>
    vm.command(verb).description(what).argument('<vm>', 'name or id');
  const run = async (cmd: Command, ref: string, verb: string, body: Record<string, unknown>): Promise<void> => {
    const { client, json } = ctxOf(cmd);
    const target = await resolveRef<VmJson>(client, 'vms', ref);
    const v = await client.post<VmJson>(`/vms/${target.id}/${verb}`, body);
    output(json, v, () => vmTable([v]));
  };
  action('start', 'start a VM and wait until its guest is ready').action((ref: string, _o, cmd: Command) => run(cmd, ref, 'start', {}));
  action('stop', 'stop a VM: guest agent, then ACPI, then quit')
    .option('--force', 'quit QEMU at once')
    .action((ref: string, o: { force?: boolean }, cmd: Command) => run(cmd, ref, 'stop', o.force ? { force: true } : {}));
  action('restart', 'stop, then start a VM').action((ref: string, _o, cmd: Command) => run(cmd, ref, 'restart', {}));

  removeCommand(vm, 'vms', 'delete a VM that is not running (--force: stop it first and detach its disks, which stay)', 'vm')
    .option('-f, --force', 'delete a running VM: stop it, detach its disks (they keep their data), then delete it');

  vm.command('console').description('print the serial console').argument('<vm>', 'name or id')
    .option('-f, --follow', 'keep printing what is new until Ctrl-C')
    .action(async (ref: string, o: { follow?: boolean }, cmd: Command) => {
      const { client } = ctxOf(cmd);
      const target = await resolveRef<VmJson>(client, 'vms', ref);
      let stopped = false;
      process.once('SIGINT', () => { stopped = true; });
      let offset = 0;
      for (;;) {
        const c = await client.get<ConsoleJson>(`/vms/${target.id}/console?offset=${offset}`);
        process.stdout.write(c.data);
        offset = c.next_offset;
        if (!o.follow || stopped) return;
        // Following: ask again shortly; an operator watches, nothing waits on this.
        if (c.data === '') await sleep(500);
      }
    });

  topCommand(vm);

  vm.command('ssh').description('run ssh to the VM (its forwarded port on 127.0.0.1)')
    .argument('<vm>', 'name or id').argument('[command...]', 'a command to run instead of a shell (after --)')
    .option('-u, --user <user>', 'guest user', 'debian')
    .action(async (ref: string, command: string[], o: { user: string }, cmd: Command) => {
      const { client } = ctxOf(cmd);
      const v = await resolveRef<VmJson>(client, 'vms', ref);
      if (v.ssh_port === null) throw new CliFailure(`VM ${v.name} has no SSH port (state ${v.state}): start it first`);
      const args = ['-p', String(v.ssh_port), `${o.user}@127.0.0.1`, ...command];
      const code = await new Promise<number>((resolve, reject) => {
        const child = spawn('ssh', args, { stdio: 'inherit' });
        child.once('error', (err) => reject(new CliFailure(`could not run ssh: ${err.message}`)));
        child.once('exit', (c, signal) => resolve(c ?? (signal ? 128 + 1 : 1)));
      });
      if (code !== 0) throw new CliFailure('', code);
    });
  return vm;
}
