import { Injectable } from '@nestjs/common';
import { TsaRepository } from './tsa.repository';

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

  constructor(private readonly tsa: TsaRepository) {}

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
          const allocated = await this.tsa.nextSerials(batch.length);
          if (allocated.length !== batch.length)
            throw new Error(`tsa serial allocation returned ${allocated.length} of ${batch.length} serials`);
          const serials = allocated.map((serial) => BigInt(serial)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
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
