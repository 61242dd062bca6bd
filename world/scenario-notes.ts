// Every fact a scenario keeps between steps, each with its type: a step reads
// what an earlier one wrote (world.noted('heldBefore')) without a cast, and a
// note misnamed or of the wrong type is a compile error, not an undefined.
import type { Row } from '../support/db-reader.ts';
import type { RecordedSnapshot, ReportJson, RepairJson } from '../support/observer-tasks.ts';
import type { ScenarioNetns } from '../support/netns.ts';
import type { AllocationInDb } from '../support/network-facts.ts';
import type { CrashPoint } from '../support/closed-sets.ts';
import type { Picture } from '../support/crash-tasks.ts';
import type { Holdings } from '../support/validation-state.ts';
import type { Sent } from '../support/validation-token.ts';
import type { RaceEntry } from '../support/race-tasks.ts';
import type { RaceAnswer } from '../support/start-delete-race.ts';
import type { CreateAnswer } from '../support/validation-names.ts';
import type { BootFiles } from '../support/validation-boot-files.ts';
import type { PreparedPlace } from '../support/validation-places.ts';
import type { EventStreamReader } from '../support/events-reader.ts';
import type { EarlyAnswer } from '../support/event-tasks.ts';
import type { DiskRequestTiming } from '../support/disk-tasks.ts';
import type { CliRun } from '../support/cli-tasks.ts';
import type { Scrape } from '../support/metrics-reader.ts';
import type { KeyPair } from '../support/real-guest.ts';
import type { InFlightCreate } from '../support/inflight-tasks.ts';
import type { NemesisRun } from '../support/nemesis.ts';
import type { InstalledPackage, InstalledServe, PackedTarball } from '../support/package-install.ts';
import type { ServeToEnd } from './vman-service.ts';

export interface ScenarioNotes {
  // ---- confinement ----
  /** A QEMU asked to run a program: its pid and the user it ran as, for the kernel's record of its end. */
  killedQemu: { pid: number; user: { uid: number; gid: number } };
  // ---- snapshots ----
  /** The marker a guest keeps in its RAM only (a tmpfs), before a snapshot. */
  ramMarker: string;
  /** The marker each guest wrote at the end of its root disk, by VM name. */
  rootTailMarkers: Map<string, string>;
  // ---- the observer, and what a scenario did behind vman's back ----
  /** The report the observer's last check returned. */
  observerReport: ReportJson;
  /** What vman answered the last request to repair what its observer finds. */
  repairAnswer: RepairJson;
  /** The pid of the QEMU started by hand under vman's storage. */
  handQemuPid: number;
  /** The disk file made by hand with qemu-img in vman's disk folder. */
  handDiskFile: string;
  /** The VM folder made by hand in vman's storage. */
  handFolder: string;
  /** The tap device put on the namespace's bridge by hand. */
  handTap: string;
  /** The DHCP reservation written into dnsmasq's hosts file by hand, as "<mac> <address>". */
  handReservation: string;
  /** The snapshot taken through vman's API whose record or folder a step then removes behind vman's back. */
  recordedSnapshot: RecordedSnapshot;

  // ---- the network ----
  /** The scenario's own network namespace, where vman runs in bridge mode. */
  netns: ScenarioNetns;
  /** The settings vman in the namespace was first started with; each restart there starts with them again. */
  netnsEnv: Record<string, string>;
  /** The address range vman was started with, as "<first>-<last>". */
  addressRange: string;
  /** The pid of the dnsmasq that served the bridge before vman was killed. */
  dnsmasqPid: number;
  /** The address allocations in the database before a start that must change nothing. */
  allocationsBefore: AllocationInDb[];

  // ---- vman dying at a crash point ----
  /** The crash point vman is set to die at. */
  crashPoint: CrashPoint;
  /** What the operator got back for the operation: an HTTP answer, or "no answer (...)". */
  crashAnswer: string;
  /** Everything (records, QEMU, files) as it was before the operation was asked for. */
  pictureBefore: Picture;

  // ---- requests that must change nothing ----
  /** What vman held before the last request. */
  heldBefore: Holdings;
  /** The built-in prototypes of this process (and so of the in-process vman) before the last request. */
  prototypesBefore: Record<string, string[]>;
  /** The API token vman requires. */
  apiToken: string;
  /** The last batch of requests sent (every request vman serves, or every list read with the token), with their answers. */
  sentRequests: Sent[];
  /** The Authorization header every request was sent with, or none (undefined). */
  credentials: { authorization: string | undefined };
  /** The requests sent at the same moment, with what each got back. */
  raceEntries: RaceEntry[];
  /** A start and a delete that overlapped, in the order they were answered. */
  startDeleteAnswers: RaceAnswer[];
  /** The creates sent one after another, in the order sent, with their answers. */
  createdOneAfterAnother: CreateAnswer[];
  /** The boot files put in each folder, by the folder's name (a null-prototype object: any name is a plain key). */
  bootFiles: Record<string, BootFiles>;
  /** The places each id would lead to and what they held before the request, by the id (a null-prototype object: any id is a plain key). */
  preparedPlaces: Record<string, PreparedPlace[]>;

  // ---- events, disks, the command line, guests ----
  /** The suite's own reader of vman's event stream. */
  eventReader: EventStreamReader;
  /** The id of the last event the suite's reader saw before its connection was cut (what it sends back as Last-Event-ID). */
  lastEventIdSeen: string;
  /** What the last `?wait=false` start answered, and the VM's row the moment it did. */
  earlyAnswer: EarlyAnswer;
  /** When each disk request was sent and answered, in the order sent. */
  diskRequests: DiskRequestTiming[];
  /** The last `vman` command run, and what it printed. */
  lastCliRun: CliRun;
  /** The rows of the vms table before a command that must change nothing. */
  vmsBeforeCommand: Row[];
  /** The operator's SSH key pair. */
  sshKeyPair: KeyPair;
  /** What GET /metrics said the last time a step read it before something changed. */
  metricsBefore: Scrape;
  /** The bytes a guest's dd said it wrote, to which disk. */
  guestWrote: { disk: string; bytes: number };

  // ---- vman itself, and as a package ----
  /** How a second vman, started on the same storage, ended. */
  secondVman: ServeToEnd;
  /** vman's disk folder, mounted on a small tmpfs. */
  smallDiskFolder: string;
  /** vman packed with npm pack. */
  packedTarball: PackedTarball;
  /** The tarball, installed with npm install -g into an empty prefix. */
  installedPackage: InstalledPackage;
  /** The installed vman, serving. */
  installedServe: InstalledServe;
  /** The nemesis run: its settings, each round's verdict and every answer. */
  nemesisRun: NemesisRun;

  // ---- several resources at once ----
  /** The names of the VMs created together, which later steps act on as a group. */
  group: string[];
  /** Every table of the database, dumped when what vman recorded was noted. */
  recordsBefore: Record<string, Row[]>;
  /** The creates in flight when vman was killed, with what each got back. */
  inFlightCreates: InFlightCreate[];

  // ---- the API's documentation page and lists ----
  /** Every operation (method, path) of vman's OpenAPI document. */
  documentedOperations: Array<[string, string]>;
  /** Every operation (method, path) the rendered documentation page shows. */
  renderedOperations: Array<[string, string]>;
  /** The names of the VMs the last list returned, sorted. */
  listedVmNames: string[];
}
