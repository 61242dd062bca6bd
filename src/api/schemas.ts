// Request and response schemas (TypeBox): validated by Fastify and published
// in the OpenAPI document. Every pattern has its rule in words (PATTERN_RULES),
// which a refusal quotes with the field it applies to.
import { Type, type Static } from '@fastify/type-provider-typebox';
import { NAME_PATTERN } from '../names.ts';

/** Control characters (C0, DEL and C1): never part of a name, an id, a path or a kernel command line. */
const CONTROL = '\\u0000-\\u001f\\u007f-\\u009f';

/** A name (of a VM or a disk): NAME_PATTERN, without "..". */
const NAME_RULE = `^(?!.*\\.\\.)${NAME_PATTERN.source.slice(1)}`;
/** A template name: a name that does not look like a template id. */
const TEMPLATE_NAME_RULE = `^(?!tpl-)(?!.*\\.\\.)${NAME_PATTERN.source.slice(1)}`;
/**
 * A file vman hands to QEMU: absolute, without control characters, and without
 * commas: a comma separates options in QEMU's option strings, and QEMU splits
 * -initrd on commas for multiboot kernels. "=" and ":" pass literally.
 */
const PATH_RULE = `^/[^,${CONTROL}]*$`;
/** Text that refers to something (an id, a template id or name): no control characters. */
const REFERENCE_RULE = `^[^${CONTROL}]*$`;

/** An OpenSSH public key line: its type, the key, an optional comment (no control characters). */
const SSH_KEY_RULE = '^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\\.com|sk-ecdsa-sha2-nistp256@openssh\\.com) [A-Za-z0-9+/]+={0,3}( [^\\u0000-\\u001f\\u007f]*)?$';
/** cloud-init user-data: any text but NUL. */
const USER_DATA_RULE = '^[^\\u0000]*$';

/** A byte offset in decimal. */
const OFFSET_RULE = '^(0|[1-9][0-9]{0,14})$';

/** Each pattern of the schemas below in words, as a refusal says it. */
export const PATTERN_RULES: Record<string, string> = {
  [NAME_RULE]: 'must be 1 to 63 ASCII letters, digits, ".", "_" and "-", not starting with "." or "-", without ".."',
  [TEMPLATE_NAME_RULE]: 'must be 1 to 63 ASCII letters, digits, ".", "_" and "-", not starting with "." or "-", without "..", and not starting with "tpl-" (template ids do)',
  [PATH_RULE]: 'must be an absolute path (starting with "/") without commas or control characters',
  [REFERENCE_RULE]: 'must not contain control characters',
  [SSH_KEY_RULE]: 'must be an OpenSSH public key line: its type (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ...), the key in base64, an optional comment',
  [USER_DATA_RULE]: 'must not contain NUL',
  [OFFSET_RULE]: 'must be a byte offset: a whole number from 0, written in decimal',
};

const sshKeys = Type.Array(Type.String({ pattern: SSH_KEY_RULE, maxLength: 16384 }), { maxItems: 16, description: 'SSH public keys cloud-init installs for the guest\'s default user' });
export const Readiness = Type.Union([Type.Literal('agent'), Type.Literal('ssh'), Type.Literal('serial'), Type.Literal('none')], {
  description: 'how the guest shows it is ready: its agent answers and reports an address (agent), its SSH server greets (ssh), a console line matches ready_pattern (serial), QEMU runs (none)',
});

const name = Type.String({ pattern: NAME_RULE, minLength: 1, maxLength: 63 });
const templateName = Type.String({ pattern: TEMPLATE_NAME_RULE, minLength: 1, maxLength: 63 });
const absolutePath = Type.String({ minLength: 1, maxLength: 1024, pattern: PATH_RULE });
const reference = (maxLength: number, description?: string) =>
  Type.String({ minLength: 1, maxLength, pattern: REFERENCE_RULE, ...(description ? { description } : {}) });
const nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const Problem = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.String(),
  instance: Type.Optional(Type.String()),
  errors: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
}, { $id: 'Problem' });

export const IdParams = Type.Object({ id: reference(128, 'the id (vm-…, disk-…, tpl-…) or the name') });

export const TemplateCreate = Type.Object({
  name: templateName,
  cpus: Type.Integer({ minimum: 1, maximum: 64 }),
  memory_mb: Type.Integer({ minimum: 64, maximum: 1024 * 1024 }),
  kernel_path: Type.Optional(nullable(absolutePath)),
  initrd_path: Type.Optional(nullable(absolutePath)),
  cmdline: Type.Optional(nullable(Type.String({ maxLength: 2048, pattern: REFERENCE_RULE }))),
  base_image_path: Type.Optional(nullable(absolutePath)),
  base_image_format: Type.Optional(nullable(Type.Union([Type.Literal('qcow2'), Type.Literal('raw')]))),
  readiness: Type.Optional(Readiness),
  ready_pattern: Type.Optional(nullable(Type.String({ minLength: 1, maxLength: 256, pattern: REFERENCE_RULE, description: 'a regular expression a serial console line must match (readiness serial)' }))),
  ssh_keys: Type.Optional(sshKeys),
}, { additionalProperties: false, examples: [{ name: 'web-2cpu', cpus: 2, memory_mb: 1024, kernel_path: '/var/lib/vman/images/vmlinuz', initrd_path: '/var/lib/vman/images/initrd.img', cmdline: 'console=ttyS0', readiness: 'agent' }] });
export type TemplateCreate = Static<typeof TemplateCreate>;

export const Template = Type.Object({
  id: Type.String(),
  name: Type.String(),
  cpus: Type.Integer(),
  memory_mb: Type.Integer(),
  kernel_path: nullable(Type.String()),
  initrd_path: nullable(Type.String()),
  cmdline: nullable(Type.String()),
  base_image_path: nullable(Type.String()),
  base_image_format: nullable(Type.String()),
  builtin: Type.Boolean(),
  readiness: Readiness,
  ready_pattern: nullable(Type.String()),
  ssh_keys: Type.Array(Type.String()),
  created_at: Type.String(),
});

export const VmState = Type.Union([
  Type.Literal('created'), Type.Literal('starting'), Type.Literal('running'),
  Type.Literal('stopping'), Type.Literal('stopped'), Type.Literal('error'), Type.Literal('saving'), Type.Literal('restoring'),
]);

/** `?name=`: those whose name contains this text. */
const nameFilter = Type.Optional(Type.String({ minLength: 1, maxLength: 63, pattern: REFERENCE_RULE, description: 'only those whose name contains this text' }));

export const VmListQuery = Type.Object({ state: Type.Optional(VmState), name: nameFilter }, { additionalProperties: false });

export const VmCreate = Type.Object({
  name,
  template: Type.Optional(reference(128, 'template id or name; a clone has its origin\'s')),
  from_snapshot: Type.Optional(Type.Object({
    vm: reference(128, 'the id or name of the VM the snapshot is of'),
    name,
  }, { additionalProperties: false, description: 'make the VM a clone of this snapshot: its disks are overlays over the snapshot\'s, and its first start resumes the snapshot\'s memory' })),
  ssh_keys: Type.Optional(sshKeys),
  user_data: Type.Optional(Type.String({ maxLength: 32768, pattern: USER_DATA_RULE, description: 'cloud-init user-data, passed to the guest as given' })),
}, { additionalProperties: false, examples: [{ name: 'web', template: 'small' }, { name: 'web-2', from_snapshot: { vm: 'web', name: 'warm' } }] });
export type VmCreate = Static<typeof VmCreate>;

/** For actions that take no options: no body, an empty object or null; anything else is a 400. */
export const NoOptionsBody = Type.Optional(Type.Union([Type.Object({}, { additionalProperties: false }), Type.Null()]));

export const StopBody = Type.Union([
  Type.Object({ force: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
  Type.Null(),
]);
/** `?wait=false`: answer 202 once the action is under way; `true` or absent: answer when it is done. */
const wait = Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], {
  description: 'false: answer 202 as soon as the VM is starting or stopping, with a Location to follow it; true (the default): answer when the action is done',
}));
export const ActionQuery = Type.Object({ wait }, { additionalProperties: false });
export const StopQuery = Type.Object({ force: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])), wait }, { additionalProperties: false });
/** `?force=true`: delete a VM that runs (stopped first, its disks detached and kept); without it such a delete is a 409. */
export const DeleteVmQuery = Type.Object({
  force: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], {
    description: 'true: a VM that runs is stopped, its disks detached (they keep their data) and it is deleted; otherwise deleting a VM that runs is refused (409)',
  })),
}, { additionalProperties: false });


/** Where to read the console from: a byte offset (next_offset of the last read), in decimal. */
export const ConsoleQuery = Type.Object({
  offset: Type.Optional(Type.String({ pattern: OFFSET_RULE, description: 'read from this byte on: the next_offset of the last read, to read only what is new' })),
}, { additionalProperties: false });

export const Console = Type.Object({
  offset: Type.Integer({ description: 'where this read began (0 when the console began again)' }),
  next_offset: Type.Integer({ description: 'where the next read goes on from' }),
  data: Type.String(),
});

export const Vm = Type.Object({
  id: Type.String(),
  name: Type.String(),
  template_id: Type.String(),
  template: Type.String(),
  state: VmState,
  state_reason: nullable(Type.String()),
  pid: nullable(Type.Integer()),
  address: nullable(Type.String({ description: 'the IPv4 address the guest itself reported, once it did' })),
  ssh_port: nullable(Type.Integer({ description: 'the port on 127.0.0.1 forwarded to the guest\'s SSH, while it runs (user mode)' })),
  stop_method: nullable(Type.String({ description: 'how it was last stopped: agent, acpi, quit or kill' })),
  origin_snapshot: nullable(Type.Object({ vm_id: Type.String(), name: Type.String() }, { description: 'the snapshot it was cloned from' })),
  resumes_snapshot: Type.Boolean({ description: 'true until its first start, which resumes the snapshot\'s memory instead of booting' }),
  mac: Type.String(),
  storage_dir: Type.String(),
  created_at: Type.String(),
  updated_at: Type.String(),
}, {
  examples: [{
    id: 'vm-3f9a1c2b4d5e', name: 'web', template_id: 'tpl-small', template: 'small', state: 'running', state_reason: null,
    pid: 48211, address: '10.0.2.15', ssh_port: 40022, stop_method: null, origin_snapshot: null, resumes_snapshot: false, mac: '52:54:00:12:34:56',
    storage_dir: '/var/lib/vman/vms/vm-3f9a1c2b4d5e', created_at: '2026-01-05T10:00:00.000Z', updated_at: '2026-01-05T10:00:04.000Z',
  }],
});

export const problemResponses = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((s) => [s, { $ref: 'Problem#' }])) as Record<number, { $ref: string }>;

export const DiskCreate = Type.Object({
  name,
  size_gb: Type.Integer({ minimum: 1, description: 'size in GB (GiB); at most the configured maximum (VMAN_MAX_DISK_GB)' }),
  format: Type.Optional(Type.Literal('qcow2')),
}, { additionalProperties: false, examples: [{ name: 'data', size_gb: 1 }] });

export const AttachBody = Type.Object({ vm_id: reference(128, 'the VM\'s id or name') }, { additionalProperties: false, examples: [{ vm_id: 'web' }] });

export const DiskState = Type.Union([Type.Literal('available'), Type.Literal('attached')]);
export const DiskListQuery = Type.Object({ state: Type.Optional(DiskState), name: nameFilter }, { additionalProperties: false });
export const TemplateListQuery = Type.Object({ name: nameFilter }, { additionalProperties: false });

export const Disk = Type.Object({
  id: Type.String(),
  name: Type.String(),
  size_gb: Type.Integer(),
  format: Type.String(),
  path: Type.String(),
  state: DiskState,
  vm_id: nullable(Type.String()),
  mount_point: nullable(Type.String()),
  created_at: Type.String(),
  updated_at: Type.String(),
}, {
  examples: [{
    id: 'disk-8c1d2e3f4a5b', name: 'data', size_gb: 1, format: 'qcow2', path: '/var/lib/vman/disks/disk-8c1d2e3f4a5b.qcow2',
    state: 'attached', vm_id: 'vm-3f9a1c2b4d5e', mount_point: '/dev/vdb', created_at: '2026-01-05T10:01:00.000Z', updated_at: '2026-01-05T10:01:02.000Z',
  }],
});

export const SnapshotParams = Type.Object({ id: reference(128, 'the VM\'s id or name'), name });

export const SnapshotCreate = Type.Object({ name }, { additionalProperties: false, examples: [{ name: 'warm' }] });

export const RevertQuery = Type.Object({
  force: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], {
    description: 'true: revert even though the VM runs or its disks were written since the snapshot, which throws that away',
  })),
}, { additionalProperties: false });

export const Snapshot = Type.Object({
  id: Type.String(),
  name: Type.String(),
  vm_id: Type.String(),
  vm_name: Type.String(),
  with_memory: Type.Boolean({ description: 'true when it holds the guest\'s memory and device state (taken while it ran)' }),
  disks: Type.Array(Type.Object({ role: Type.String(), disk_id: Type.String() })),
  guest_address: nullable(Type.String()),
  pause_ms: nullable(Type.Integer({ description: 'how long the guest was paused while it was taken' })),
  state_bytes: nullable(Type.Integer({ description: 'size of the saved memory and device state' })),
  memory_mb: Type.Integer(),
  clones: Type.Array(Type.String(), { description: 'the VMs cloned from it, by name' }),
  created_at: Type.String(),
});
