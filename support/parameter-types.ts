// Custom Cucumber parameter types used across the features.
import { defineParameterType } from '@cucumber/cucumber';
import { operationPattern, outcomePattern, type OperationName, type OutcomeName } from './crash-tasks.ts';

defineParameterType({
  name: 'ip',
  regexp: /\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/,
  transformer: (s: string) => s,
});

/** What an operator asks vman to do, in the @crash feature's words. */
defineParameterType({
  name: 'operation',
  regexp: operationPattern,
  transformer: (s: string) => s as OperationName,
});

/** What a stop, delete or detach cut short has become. */
defineParameterType({
  name: 'outcome',
  regexp: outcomePattern,
  transformer: (s: string) => s as OutcomeName,
});
