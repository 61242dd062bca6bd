// Names or ids to objects, on the client: a direct GET first (an id always
// works, a name does where vman looks names up), then the list, matched by id
// or by name, so the command works against either kind of vman.
import type { Command } from 'commander';
import { ApiClient, ApiError } from './client.ts';
import { ctxOf } from './context.ts';

export interface Named {
  id: string;
  name: string;
}

const NOUN = { vms: 'VM', disks: 'disk', templates: 'template' } as const;

/** `kind` is the collection: 'vms', 'disks' or 'templates'. */
export async function resolveRef<T extends Named>(client: ApiClient, kind: 'vms' | 'disks' | 'templates', ref: string): Promise<T> {
  try {
    return await client.get<T>(`/${kind}/${encodeURIComponent(ref)}`);
  } catch (err) {
    // 400: a name the id pattern refuses; 404: not an id (or unknown); either way, look in the list.
    if (!(err instanceof ApiError) || (err.status !== 404 && err.status !== 400)) throw err;
    const all = await client.get<T[]>(`/${kind}`);
    const hit = all.find((x) => x.id === ref) ?? all.find((x) => x.name === ref);
    if (hit) return hit;
    throw new ApiError(404, 'Not Found', `no ${NOUN[kind]} named or with id ${JSON.stringify(ref)}`, err.body);
  }
}

/** `vman <noun> rm <ref>`: the one removal the VM, disk and template commands share. */
export function removeCommand(parent: Command, kind: 'vms' | 'disks' | 'templates', description: string, argument: string): Command {
  return parent.command('rm').description(description).argument(`<${argument}>`, 'name or id')
    .action(async (ref: string, o: { force?: boolean }, cmd: Command) => {
      const { client, json } = ctxOf(cmd);
      const target = await resolveRef<Named>(client, kind, ref);
      await client.delete(`/${kind}/${target.id}${o.force ? '?force=true' : ''}`).catch((err: unknown) => {
        // The API names its query; a person at the command line wants the flag.
        if (err instanceof ApiError && kind === 'vms' && err.status === 409 && err.detail.includes('?force=true')) {
          throw new ApiError(err.status, err.title, `${err.detail} (here: vman vm rm --force ${ref})`, err.body);
        }
        throw err;
      });
      if (!json) process.stdout.write(`removed ${NOUN[kind]} ${target.name} (${target.id})\n`);
    });
}
