/**
 * TypeORM's PostgreSQL driver answers `query()` for UPDATE/DELETE … RETURNING with
 * `[rows, affectedCount]` and for SELECT (and INSERT … RETURNING) with the rows: this takes the rows from either.
 */
export function returnedRows<T>(result: unknown): T[] {
  if (Array.isArray(result) && result.length === 2 && Array.isArray(result[0]) && typeof result[1] === 'number')
    return result[0] as T[];
  return result as T[];
}
