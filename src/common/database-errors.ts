// How a database error reads to the layers above the database: the HTTP error filter answers 503
// and the audit writer fails closed on these, without importing the database adapter.

/** A short reason without connection strings or credentials. */
export function describeDatabaseError(error: unknown): string {
  const e = error as { code?: string; message?: string };
  return (
    (e.code ? `${e.code}: ` : '') + (e.message ?? String(error)).replace(/postgres(ql)?:\/\/\S+/g, '[database url]')
  );
}

/** True for errors that mean "the database is unreachable", as opposed to a bad query. */
export function isDatabaseUnavailable(error: unknown): boolean {
  const e = error as { code?: string; message?: string; driverError?: { code?: string } };
  const code = e.code ?? e.driverError?.code;
  if (
    code &&
    [
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'EPIPE',
      'ENOTFOUND',
      '57P01',
      '57P02',
      '57P03',
      '08000',
      '08001',
      '08003',
      '08004',
      '08006',
      '53300',
    ].includes(code)
  )
    return true;
  const message = e.message ?? '';
  return /Connection terminated|timeout exceeded when trying to connect|connect ECONNREFUSED|Client has encountered a connection error|Connection closed/i.test(
    message,
  );
}
