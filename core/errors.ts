import type { Field } from './types.ts';

/** A bad row: names the field so the server can answer INVALID_ARGUMENT with it. */
export class RowInputError extends Error {
  readonly field: RowErrorField;
  constructor(field: RowErrorField, message: string) {
    super(message);
    this.name = 'RowInputError';
    this.field = field;
  }
}

export type RowErrorField = Field | 'id' | `raw.${Field}` | '';
