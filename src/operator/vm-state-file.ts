// A running VM's memory and device state to a file and back, on the QEMU we
// have (7.2: no `file:` migration yet). Saving is a non-live migration of a
// paused guest to a unix socket vman listens on, written by vman to a file it
// opened; resuming hands QEMU a descriptor vman opened on that file
// (`-incoming defer`, then `migrate-incoming fd:N`). No shell, no program
// QEMU would have to run: it fits a seccomp sandbox that denies spawning.
// (getfd would need SCM_RIGHTS, which node:net cannot send.)
import { createServer, type Socket } from 'node:net';
import { open, rm } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { pollUntil, TerminalStateError } from '../poll.ts';
import type { QmpLike } from './hotplug.ts';

/** The descriptor number a resuming QEMU reads its state from. */
export const INCOMING_FD = 3;

/** Far above what a disk writes: the default (128 MiB/s) would throttle a save to a local file. */
const UNTHROTTLED_BYTES_PER_SECOND = 64 * 2 ** 30;

interface MigrationInfo {
  status?: string;
  'error-desc'?: string;
  'total-time'?: number;
  ram?: { transferred?: number };
}

export interface SavedState {
  bytes: number;
  ms: number;
}

/**
 * Saves a paused guest's memory and device state to `file` (made new, 0600).
 * QEMU ends in `postmigrate` with its disks flushed and let go: the caller
 * copies them, then `cont`s.
 */
export async function saveState(qmp: QmpLike, socketPath: string, file: string, opts: { timeoutMs?: number; beforeMigrate?: (socket: string) => Promise<void> } = {}): Promise<SavedState> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const started = Date.now();
  await rm(socketPath, { force: true });
  const sink = createWriteStream(file, { flags: 'wx', mode: 0o600 });
  await once(sink, 'open');
  const server = createServer();
  let bytes = 0;
  let connection: Socket | undefined;
  // Settles once QEMU closed the stream and every byte is in the file (the sink closed).
  const written = new Promise<void>((resolve, reject) => {
    sink.once('error', reject);
    sink.once('close', resolve);
    server.once('connection', (conn) => {
      connection = conn;
      server.close();
      conn.on('data', (d: Buffer) => (bytes += d.length));
      conn.once('error', reject);
      conn.pipe(sink);
    });
  });
  written.catch(() => undefined);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, resolve);
    });
    // QEMU connects as its own user: the socket must be its to write to.
    await opts.beforeMigrate?.(socketPath);
    await qmp.execute('migrate-set-parameters', { 'max-bandwidth': UNTHROTTLED_BYTES_PER_SECOND });
    await qmp.execute('migrate', { uri: `unix:${socketPath}` });
    await pollUntil('the state saved (query-migrate completed)', async () => {
      const m = await qmp.execute<MigrationInfo>('query-migrate');
      if (m.status === 'completed') return { done: true, value: m };
      if (m.status === 'failed' || m.status === 'cancelled') throw new TerminalStateError(`saving the state ${m.status}: ${m['error-desc'] ?? 'no reason given'}`);
      return { done: false, seen: `migration ${m.status ?? 'not started'}, ${m.ram?.transferred ?? 0} bytes sent` };
    }, { timeoutMs, intervalMs: 10 });
    // QEMU has sent it all; the last bytes may still be on their way to the file.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([written, new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the saved state was sent but not written within 10 s (${bytes} bytes written)`)), 10_000);
    })]).finally(() => clearTimeout(timer));
    // Not synced here: the guest waits paused for nothing the disk does; the caller syncs before it records.
    return { bytes, ms: Date.now() - started };
  } finally {
    connection?.destroy();
    server.close();
    sink.destroy();
    await rm(socketPath, { force: true });
  }
}

/** On disk before it is recorded: a snapshot that outlives a power cut. */
export async function syncFile(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Opens a saved state for a resuming QEMU (the caller closes it once QEMU has it). */
export async function openState(file: string): Promise<{ fd: number; close(): Promise<void> }> {
  const handle = await open(file, 'r');
  return { fd: handle.fd, close: () => handle.close() };
}

/** Feeds the state QEMU holds at INCOMING_FD into it and waits until it is loaded (QEMU then paused). */
export async function loadState(qmp: QmpLike, timeoutMs = 120_000): Promise<number> {
  const started = Date.now();
  await qmp.execute('migrate-incoming', { uri: `fd:${INCOMING_FD}` });
  await pollUntil('the saved state loaded', async () => {
    const m = await qmp.execute<MigrationInfo>('query-migrate');
    if (m.status === 'completed') return { done: true, value: null };
    if (m.status === 'failed' || m.status === 'cancelled') throw new TerminalStateError(`loading the saved state ${m.status}: ${m['error-desc'] ?? 'no reason given'}`);
    return { done: false, seen: `incoming migration ${m.status ?? 'not started'}` };
  }, { timeoutMs, intervalMs: 5 });
  return Date.now() - started;
}
