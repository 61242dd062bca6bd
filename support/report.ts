// Formats what goes into the living documentation.
import type { ProtocolLogEntry } from '../src/operator/qmp-client.ts';

export function formatProtocolLog(entries: ReadonlyArray<ProtocolLogEntry & { vm: string }>): string {
  const t0 = entries[0]?.at ?? 0;
  return entries
    .map((e) => `+${String(e.at - t0).padStart(6)} ms ${e.vm} ${e.direction === 'out' ? '→' : '←'} ${JSON.stringify(e.message)}`)
    .join('\n');
}
