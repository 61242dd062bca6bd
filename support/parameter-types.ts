// Custom Cucumber parameter types used across the features.
import { defineParameterType } from '@cucumber/cucumber';

defineParameterType({
  name: 'ip',
  regexp: /\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/,
  transformer: (s: string) => s,
});
