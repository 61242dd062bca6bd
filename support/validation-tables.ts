// What the @validation feature's Examples tables write, read into values: a
// JSON value or text, an id, a body, a kind of thing, and the requests the
// feature sends bad input to (its targets).

/** The requests the feature sends bad input to, by the names its steps use. */
export type Target =
  | { what: 'create a template' }
  | { what: 'create a VM' }
  | { what: 'create a disk' }
  | { what: 'attach'; disk: string; vm: string }
  | { what: 'detach'; disk: string }
  | { what: 'start' | 'stop' | 'restart'; vm: string };

export type Kind = 'template' | 'VM' | 'disk';


/** A field the request leaves out altogether. */
export const LEFT_OUT = Symbol('left out');

/** A file of the scenario's own, made on demand (`the file "vm,linuz"`): its absolute path is the value. */
export interface MadeFile { madeFile: string }

/**
 * A value as the Examples tables write it: JSON (`"web"`, `42`, `null`, `[1]`,
 * `"web\u0001"`), `<n> letters` for a long string, `left out`, or
 * `the file "<name>"` for the path of a file of that name that exists.
 */
export function tableValue(text: string): unknown {
  const t = text.trim();
  if (t === 'left out') return LEFT_OUT;
  const letters = /^(\d+) letters$/.exec(t);
  if (letters) return 'a'.repeat(Number(letters[1]));
  const file = /^the file (".*")$/.exec(t);
  if (file) return { madeFile: parseJson(file[1]!, text) as string } satisfies MadeFile;
  return parseJson(t, text);
}

function parseJson(json: string, original: string): unknown {
  // Gherkin turns \n in a cell into a newline; JSON wants it escaped.
  const escaped = json.replace(/[\u0000-\u001f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  try {
    return JSON.parse(escaped);
  } catch {
    throw new Error(`the table value ${JSON.stringify(original)} is neither JSON, nor "<n> letters", nor "left out", nor "the file "<name>""`);
  }
}

/** An id as the tables write it: JSON text, or `<n> letters`. */
export function tableId(text: string): string {
  const v = tableValue(text);
  if (typeof v !== 'string') throw new Error(`the id ${text} is not text`);
  return v;
}

/** A body as the Examples tables write it: sent as it stands, or `nothing` for no body at all. */
export function tableBody(text: string): string | undefined {
  return text.trim() === 'nothing' ? undefined : text;
}

export function kindNamed(word: string): Kind {
  const w = word.replace(/s$/, '');
  if (w === 'template' || w === 'VM' || w === 'disk') return w;
  throw new Error(`vman has templates, VMs and disks, not ${word}`);
}

export const creating = (kind: string): Target => ({ what: `create a ${kindNamed(kind)}` as 'create a template' });

