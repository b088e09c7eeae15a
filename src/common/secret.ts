import { inspect } from 'node:util';

// A value that must never reach a log, a journal, a JSON document or an error message.
// Only adapters call `reveal()`, and only while connecting to a target.
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return '<secret>';
  }

  toJSON(): string {
    return '<secret>';
  }

  [inspect.custom](): string {
    return '<secret>';
  }
}
