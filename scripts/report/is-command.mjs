// Whether a report module runs as a command (node scripts/report/x.mjs) or is
// imported: argv[1] is the module's file, perhaps through a symbolic link.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** @param {string} moduleUrl the caller's import.meta.url */
export function isCommand(moduleUrl) {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}
