// The suite is vman's judge: its evidence must come from its own readers, not
// from vman's code. This fails when step-definitions/ or support/ import
// runtime code from src/ (types are fine), or when world/ imports from src/
// anything but what starts vman. Run by `npm test`.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const src = path.join(root, 'src') + path.sep;
// What the World may use to start vman (the entry point, its configuration, its host probe).
const WORLD_MAY_START_WITH = new Set(['src/server.ts', 'src/config.ts', 'src/host/probe.ts'].map((f) => path.join(root, f)));

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? files(full) : /\.(ts|mjs|js)$/.test(e.name) ? [full] : [];
  });
}

/** Runtime (not type-only) module specifiers of a file, with their lines. */
function runtimeImports(file) {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out = [];
  const add = (spec, node) => out.push({ spec, line: sf.getLineAndCharacterOfPosition(node.getStart()).line + 1 });
  const visit = (node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const c = node.importClause;
      const typeOnly = c?.isTypeOnly || (c && !c.name && c.namedBindings && ts.isNamedImports(c.namedBindings) && c.namedBindings.elements.length > 0 && c.namedBindings.elements.every((e) => e.isTypeOnly));
      if (!typeOnly) add(node.moduleSpecifier.text, node);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier) && !node.isTypeOnly) {
      add(node.moduleSpecifier.text, node);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
      add(node.arguments[0].text, node);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

const problems = [];
for (const dir of ['step-definitions', 'support', 'world']) {
  for (const file of files(path.join(root, dir))) {
    for (const { spec, line } of runtimeImports(file)) {
      if (!spec.startsWith('.')) continue;
      const target = path.resolve(path.dirname(file), spec);
      if (!target.startsWith(src)) continue;
      if (dir === 'world' && WORLD_MAY_START_WITH.has(target)) continue;
      problems.push(`${path.relative(root, file)}:${line} imports ${spec} (vman's runtime code)`);
    }
  }
}
if (problems.length > 0) {
  console.error(`The suite must judge vman with its own readers; these imports use vman's code:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log('suite imports: no runtime code from src/ in step-definitions/ or support/; world/ starts vman only');
