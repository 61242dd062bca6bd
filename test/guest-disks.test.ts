import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { GuestExecResult } from '../src/operator/guest-agent-client.ts';
import { GuestDiskError, guestBlockDevices, parseBlockDeviceList, waitForGuestDisk } from '../src/operator/guest-disks.ts';
import type { GuestExecLike, WithGuestAgent } from '../src/operator/guest-disks.ts';
import { WaitTimeoutError } from '../src/poll.ts';

/** Answers each exec with the next scripted result (the last one repeats) and records the calls. */
class FakeAgent implements GuestExecLike {
  readonly calls: Array<{ path: string; args: string[]; timeoutMs: number | undefined }> = [];
  constructor(private readonly results: GuestExecResult[]) {}
  async exec(path: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<GuestExecResult> {
    this.calls.push({ path, args, timeoutMs: opts.timeoutMs });
    const r = this.results.length > 1 ? this.results.shift() : this.results[0];
    if (!r) throw new Error('no scripted result');
    return r;
  }
}

const ok = (stdout: string): GuestExecResult => ({ exitCode: 0, stdout, stderr: '' });
const GiB = 1024 ** 3;
const SECTORS_1G = String(GiB / 512);

describe('guestBlockDevices', () => {
  it('runs one /bin/sh script over /sys/block/vd* and parses name, size and serial', async () => {
    const ga = new FakeAgent([ok(`vda\t2097152\troot-1\nvdb\t${SECTORS_1G}\td1\n`)]);
    const devices = await guestBlockDevices(ga);
    assert.equal(ga.calls.length, 1);
    assert.equal(ga.calls[0]?.path, '/bin/sh');
    assert.equal(ga.calls[0]?.args[0], '-c');
    assert.match(ga.calls[0]?.args[1] ?? '', /\/sys\/block\/vd\*/);
    assert.deepEqual(devices, [
      { name: 'vda', path: '/dev/vda', serial: 'root-1', sizeBytes: 1024 * 1024 * 1024 },
      { name: 'vdb', path: '/dev/vdb', serial: 'd1', sizeBytes: GiB },
    ]);
  });

  it('returns an empty list when the guest has no virtio disks', async () => {
    assert.deepEqual(await guestBlockDevices(new FakeAgent([ok('')])), []);
  });

  it('throws a GuestDiskError carrying the result when the script fails', async () => {
    const failed: GuestExecResult = { exitCode: 127, stdout: '', stderr: 'sh: not found\n' };
    const err = await guestBlockDevices(new FakeAgent([failed])).catch((e: unknown) => e);
    assert.ok(err instanceof GuestDiskError);
    assert.equal(err.result, failed);
    assert.match(err.message, /exit code 127.*sh: not found/);
  });
});

describe('parseBlockDeviceList', () => {
  it('keeps an empty serial, CRLF endings and tabs inside a serial', () => {
    assert.deepEqual(parseBlockDeviceList('vdc\t8\t\r\nvdd\t16\ta\tb\n'), [
      { name: 'vdc', path: '/dev/vdc', serial: '', sizeBytes: 4096 },
      { name: 'vdd', path: '/dev/vdd', serial: 'a\tb', sizeBytes: 8192 },
    ]);
  });

  it('skips lines that do not parse', () => {
    const text = [
      '', // blank
      'garbage',
      'vde\t\tgone-mid-listing', // size unreadable: the disk vanished
      'vdf\tabc\tx',
      'sda\t8\tnot-virtio',
      '../etc\t8\tx',
      'vdaa\t4\tok',
    ].join('\n');
    assert.deepEqual(parseBlockDeviceList(text), [{ name: 'vdaa', path: '/dev/vdaa', serial: 'ok', sizeBytes: 2048 }]);
  });
});

/** A WithGuestAgent that counts connections, like `(fn) => vm.withGuestAgent(fn)`. */
function connector(ga: GuestExecLike): WithGuestAgent & { connections: number } {
  const w = Object.assign(<T>(fn: (g: GuestExecLike) => Promise<T>): Promise<T> => {
    w.connections++;
    return fn(ga);
  }, { connections: 0 });
  return w;
}

describe('waitForGuestDisk', () => {
  it('polls until the serial appears and returns that device', async () => {
    const ga = new FakeAgent([ok('vda\t8\troot\n'), ok('vda\t8\troot\n'), ok(`vda\t8\troot\nvdb\t${SECTORS_1G}\td1\n`)]);
    const withAgent = connector(ga);
    const dev = await waitForGuestDisk(withAgent, 'd1', { timeoutMs: 2000, present: true, intervalMs: 5 });
    assert.deepEqual(dev, { name: 'vdb', path: '/dev/vdb', serial: 'd1', sizeBytes: GiB });
    assert.equal(withAgent.connections, 3, 'one short-lived connection per poll');
  });

  it('polls until the serial is gone and returns undefined', async () => {
    const ga = new FakeAgent([ok('vdb\t8\td1\n'), ok('')]);
    assert.equal(await waitForGuestDisk(connector(ga), 'd1', { timeoutMs: 2000, present: false, intervalMs: 5 }), undefined);
    assert.equal(ga.calls.length, 2);
  });

  it('keeps polling through agent errors', async () => {
    let calls = 0;
    const withAgent: WithGuestAgent = async (fn) => {
      if (++calls < 3) throw new Error('agent busy');
      return fn(new FakeAgent([ok('vdb\t8\td1\n')]));
    };
    const dev = await waitForGuestDisk(withAgent, 'd1', { timeoutMs: 2000, present: true, intervalMs: 5 });
    assert.equal(dev?.name, 'vdb');
  });

  it('times out saying what it saw', async () => {
    const ga = new FakeAgent([ok('vda\t8\troot\n')]);
    const err = await waitForGuestDisk(connector(ga), 'd1', { timeoutMs: 60, present: true, intervalMs: 10 }).catch((e: unknown) => e);
    assert.ok(err instanceof WaitTimeoutError);
    assert.match(err.message, /serial "d1" to appear/);
    assert.match(err.message, /vda\(root, 4096 B\)/);
  });
});
