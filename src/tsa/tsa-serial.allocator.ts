import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';

interface Waiter {
  resolve(serial: bigint): void;
  reject(error: unknown): void;
}

/** Most serials one round trip hands out. */
const MAX_BATCH = 1000;

/**
 * TSTInfo serial numbers from the PostgreSQL sequence `tsa_serial_seq` (CACHE 1): unique and
 * increasing in allocation order across every replica, with no block a replica could sit on.
 * Concurrent requests are coalesced into one `nextval` round trip per batch, and within a batch
 * handed out in request order, so the database is not asked once per timestamp under load.
 */
@Injectable()
export class TsaSerialAllocator {
  private readonly waiting: Waiter[] = [];
  private draining = false;

  constructor(private readonly dataSource: DataSource) {}

  next(): Promise<bigint> {
    return new Promise<bigint>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (!this.draining) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.waiting.length > 0) {
        const batch = this.waiting.splice(0, MAX_BATCH);
        try {
          const rows: Array<{ serial: string }> = await this.dataSource.query(
            `SELECT nextval('tsa_serial_seq')::text AS serial FROM generate_series(1, $1::int)`,
            [batch.length],
          );
          if (rows.length !== batch.length) throw new Error(`tsa serial allocation returned ${rows.length} of ${batch.length} serials`);
          const serials = rows.map((row) => BigInt(row.serial)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
          batch.forEach((waiter, i) => waiter.resolve(serials[i]));
        } catch (error) {
          for (const waiter of batch) waiter.reject(error);
        }
      }
    } finally {
      this.draining = false;
    }
  }
}
