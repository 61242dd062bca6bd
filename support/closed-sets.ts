// The closed sets the features speak of (VM states, built-in templates, stop
// methods, crash points, HTTP methods, ...) as the suite knows them, each with
// the Cucumber parameter type that accepts its members and nothing else: a typo
// in a feature is then an undefined step, which `cucumber-js --strict` fails,
// not an error half-way through a scenario.
//
// Plain data without Cucumber, so that unit tests can read it:
// support/parameter-types.ts registers these types, .vscode/settings.json
// declares them to the editor, and test/parameter-types.test.ts holds the
// lists equal to vman's own and the settings equal to what Cucumber registers.
// The suite keeps its own lists: it must not import vman's code at run time.
import type { IdAction } from './validation-requests.ts';
import type { Target } from './validation-tables.ts';

/** created → starting → running → stopping → stopped; error from any failing step. */
export const VM_STATES = ['created', 'starting', 'running', 'stopping', 'stopped', 'error', 'saving', 'restoring'] as const;
export type VmState = (typeof VM_STATES)[number];

/** A disk is free or attached to one VM (the steps name these states in their own words). */
export const DISK_STATES = ['available', 'attached'] as const;
export type DiskState = (typeof DISK_STATES)[number];

/** The templates every vman has, with their sizes. */
export const BUILT_IN_TEMPLATES = [
  { name: 'small', cpus: 1, memoryMb: 512 },
  { name: 'medium', cpus: 2, memoryMb: 1024 },
  { name: 'large', cpus: 4, memoryMb: 2048 },
] as const;
export type BuiltInTemplate = (typeof BUILT_IN_TEMPLATES)[number]['name'];

/** How a VM was stopped, as vman records it (stop_method), and as a step says it. */
export const STOP_METHODS = {
  agent: 'through its guest agent',
  acpi: 'by the ACPI power button',
  quit: "by QEMU's quit command",
  kill: 'by SIGKILL',
} as const;
export type StopMethod = keyof typeof STOP_METHODS;

/** Where vman can be made to die (VMAN_CRASH_AT), one point between two steps of an operation. */
export const CRASH_POINTS = [
  'vm.create.before-record',
  'vm.start.after-address', 'vm.start.after-network', 'vm.start.after-launch', 'vm.start.after-connect', 'vm.start.before-record',
  'vm.stop.after-stopping', 'vm.stop.after-exit', 'vm.stop.before-record',
  'vm.delete.before-record', 'vm.delete.after-record',
  'vm.snapshot.after-pause', 'vm.snapshot.after-copy', 'vm.snapshot.before-record', 'vm.revert.after-stop', 'vm.revert.after-disks',
  'disk.create.after-image', 'disk.create.after-rename',
  'disk.attach.after-file-node', 'disk.attach.after-format-node', 'disk.attach.after-device-add', 'disk.attach.before-record',
  'disk.detach.after-device-del', 'disk.detach.after-device-deleted', 'disk.detach.after-format-node-del', 'disk.detach.before-record',
  'disk.delete.after-move', 'disk.delete.after-record',
  'network.setup.after-tap', 'network.release.after-tap',
] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

/** The methods the @validation feature sends (a path vman does not take one of is answered 405). */
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** What vman holds, as the features name them. */
export const KINDS = ['template', 'VM', 'disk'] as const;
export type Kind = (typeof KINDS)[number];

/** The actions a VM takes by POST /vms/{id}/<action>. */
export const VM_ACTIONS = ['start', 'stop', 'restart'] as const;
export type VmAction = (typeof VM_ACTIONS)[number];

/** Actions on something named by an id, besides `attach to "<VM>"`. */
export const ID_ACTIONS = ['look up', 'delete', 'start', 'stop', 'restart', 'detach'] as const;

/** Keys that would reach Object.prototype through a body copied or merged carelessly. */
export const POISON_KEYS = ['__proto__', 'constructor', 'prototype'] as const;
export type PoisonKey = (typeof POISON_KEYS)[number];

/** The requests the @validation feature sends at the same moment. */
export const RACE_REQUESTS = ['start', 'delete', 'attach', 'create'] as const;
export type RaceRequest = (typeof RACE_REQUESTS)[number];

/** A start and a delete of one VM, in the order they are sent. */

/** The requests the @validation tables name, with the names of what they are about. */
export const REQUEST_SAMPLES = [
  'create a template', 'create a VM', 'create a disk',
  'attach the disk "data" to "db"', 'detach the disk "data"',
  'start the VM "db"', 'stop the VM "db"', 'restart the VM "db"',
] as const;

// --- the parameter types ------------------------------------------------------------

export interface ClosedSetType {
  name: string;
  regexp: RegExp;
  transformer: (text: string) => unknown;
  /** Texts it accepts, for the unit test: every member, or samples where a member holds a name. */
  members: readonly string[];
}

/** Members as one alternation, each taken literally. */
export function alternatives(members: readonly string[]): string {
  return members.map((m) => m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
}

function oneOf<T extends string>(name: string, members: readonly T[]): ClosedSetType {
  return { name, regexp: new RegExp(alternatives(members)), transformer: (text) => text as T, members };
}

/** A request as the tables write it (`attach the disk "data" to "db"`), read into what validation-tasks.ts sends. */
function requestNamed(text: string): Target {
  const names = [...text.matchAll(/"([^"]+)"/g)].map((m) => m[1]!);
  const [verb, noun] = text.split(' ');
  if (verb === 'create') return { what: `create a ${text.slice('create a '.length) as Kind}` };
  if (verb === 'attach') return { what: 'attach', disk: names[0]!, vm: names[1]! };
  if (verb === 'detach') return { what: 'detach', disk: names[0]! };
  if (noun === 'the') return { what: verb as VmAction, vm: names[0]! };
  throw new Error(`no request ${JSON.stringify(text)}`);
}

const QUOTED = '"[^"]+"';
const kindsPlural = KINDS.map((k) => `${k}s`);
const stopPhrases = Object.values(STOP_METHODS);
const oneMethod = alternatives(HTTP_METHODS);

export const CLOSED_SET_TYPES: readonly ClosedSetType[] = [
  oneOf('vm-state', VM_STATES),
  oneOf('built-in-template', BUILT_IN_TEMPLATES.map((t) => t.name)),
  {
    name: 'stop-method',
    regexp: new RegExp(alternatives(stopPhrases)),
    transformer: (text): StopMethod => (Object.keys(STOP_METHODS) as StopMethod[]).find((m) => STOP_METHODS[m] === text)!,
    members: stopPhrases,
  },
  oneOf('crash-point', CRASH_POINTS),
  oneOf('http-method', HTTP_METHODS),
  {
    // "GET, HEAD, POST, OPTIONS", as the 405 examples list what a path takes.
    name: 'http-methods',
    regexp: new RegExp(`(?:${oneMethod})(?:, (?:${oneMethod}))*`),
    transformer: (text): HttpMethod[] => text.split(', ') as HttpMethod[],
    members: [...HTTP_METHODS, 'GET, HEAD, POST, OPTIONS'],
  },
  oneOf('kind', KINDS),
  {
    name: 'kinds',
    regexp: new RegExp(alternatives(kindsPlural)),
    transformer: (text): Kind => text.slice(0, -1) as Kind,
    members: kindsPlural,
  },
  oneOf('vm-action', VM_ACTIONS),
  {
    name: 'id-action',
    regexp: new RegExp(`${alternatives(ID_ACTIONS)}|attach to "[^"]+"`),
    transformer: (text): IdAction => {
      const attach = /^attach to "([^"]+)"$/.exec(text);
      return attach ? { attachTo: attach[1]! } : (text as (typeof ID_ACTIONS)[number]);
    },
    members: [...ID_ACTIONS, 'attach to "db"'],
  },
  {
    name: 'request',
    regexp: new RegExp(
      `create a (?:${alternatives(KINDS)})|attach the disk ${QUOTED} to ${QUOTED}|detach the disk ${QUOTED}|(?:${alternatives(VM_ACTIONS)}) the VM ${QUOTED}`,
    ),
    transformer: requestNamed,
    members: REQUEST_SAMPLES,
  },
  oneOf('poison-key', POISON_KEYS),
  oneOf('race-request', RACE_REQUESTS),
];
