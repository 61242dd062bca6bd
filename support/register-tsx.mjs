// Loaded first by cucumber-js: lets Node import the TypeScript step definitions.
import { register } from 'tsx/esm/api';
register();
