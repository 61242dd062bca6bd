// Custom Cucumber parameter types used across the features: the closed sets of
// closed-sets.ts, an IPv4 address, and the operations and outcomes of the
// @crash feature.
//
// Registered from lists, not from literals, so the Cucumber extension cannot
// read them from here: .vscode/settings.json declares each one, and
// test/parameter-types.test.ts fails when the two differ.
import { defineParameterType } from '@cucumber/cucumber';
import { CLOSED_SET_TYPES } from './closed-sets.ts';
import { operationPattern, outcomePattern, type OperationName, type OutcomeName } from './crash-tasks.ts';
import { momentPattern } from './crash-moments.ts';

const OTHER_TYPES = [
  { name: 'ip', regexp: /\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/, transformer: (s: string) => s },
  /** What an operator asks vman to do, in the @crash feature's words. */
  { name: 'operation', regexp: operationPattern, transformer: (s: string) => s as OperationName },
  /** What a stop, delete or detach cut short has become. */
  { name: 'outcome', regexp: outcomePattern, transformer: (s: string) => s as OutcomeName },
  /** What vman left at the moment a crash point names, seen before it is started again. */
  { name: 'crash-moment', regexp: momentPattern, transformer: (s: string) => s },
];

for (const { name, regexp, transformer } of OTHER_TYPES) defineParameterType({ name, regexp, transformer });

// Not offered in snippets: a snippet would name its argument `vm-state`, which
// is no JavaScript name, and would read {kind} into any "VM" of a new step.
for (const { name, regexp, transformer } of CLOSED_SET_TYPES) defineParameterType({ name, regexp, transformer, useForSnippets: false });
