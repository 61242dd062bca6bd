// Runs the suite's sqlite3 queries in a process of its own. Two SQLite
// libraries in one process (vman's better-sqlite3 in-process, and sqlite3)
// break each other's POSIX locks: closing one's file descriptor drops the
// other's locks, and SQLite may then delete a WAL that vman is still writing.
// Protocol: one JSON request per line on stdin ({id, path, sql, params, write}),
// one JSON reply per line on stdout ({id, rows} | {id, changes} | {id, error}).
import { createInterface } from 'node:readline';
import sqlite3 from 'sqlite3';

function run({ path, sql, params = [], write = false }) {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(path, write ? sqlite3.OPEN_READWRITE : sqlite3.OPEN_READONLY, (openErr) => {
      if (openErr) return reject(openErr);
      const done = (err, value) => db.close(() => (err ? reject(err) : resolve(value)));
      if (write) db.run(sql, params, function (err) { done(err, { changes: this?.changes ?? 0 }); });
      else db.all(sql, params, (err, rows) => done(err, { rows }));
    });
  });
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const req = JSON.parse(line);
  run(req).then(
    (value) => process.stdout.write(`${JSON.stringify({ id: req.id, ...value })}\n`),
    (err) => process.stdout.write(`${JSON.stringify({ id: req.id, error: String(err?.message ?? err) })}\n`),
  );
}
