// Option values that must be whole numbers: a typo is a usage error (exit 2), not a request.
import { InvalidArgumentError } from 'commander';

export function wholeNumber(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a whole number`);
  return Number(value);
}
