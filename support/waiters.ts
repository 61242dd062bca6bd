// Waiters for the suite: poll with a deadline, report what was seen on timeout.
import { readFile } from 'node:fs/promises';
import { pollUntil } from './poll.ts';
import { isAlive } from './proc-reader.ts';

export async function waitForProcessGone(pid: number, { timeoutMs }: { timeoutMs: number }): Promise<void> {
  await pollUntil(
    `process ${pid} to exit`,
    async () => ((await isAlive(pid)) ? { done: false, seen: `process ${pid} still alive` } : { done: true, value: undefined }),
    { timeoutMs },
  );
}

export async function waitForConsoleLine(
  logPath: string,
  marker: string,
  { timeoutMs }: { timeoutMs: number },
): Promise<string> {
  return pollUntil(
    `a console line containing "${marker}" in ${logPath}`,
    async () => {
      const text = await readFile(logPath, 'utf8').catch(() => '');
      const line = text.split('\n').find((l) => l.includes(marker));
      return line !== undefined
        ? { done: true, value: line.trim() }
        : { done: false, seen: text ? `…${text.slice(-160).replace(/\s+/g, ' ')}` : 'an empty console' };
    },
    { timeoutMs, intervalMs: 50 },
  );
}
