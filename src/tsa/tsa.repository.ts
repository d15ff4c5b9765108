import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { CaGenerationEntity } from '../ca/ca-generation.entity';
import { CaEntity } from '../ca/ca.entity';

/** What the timestamp authority reads and allocates: its CA's active generation and TSTInfo serials. */
@Injectable()
export class TsaRepository {
  constructor(private readonly dataSource: DataSource) {}

  /**
   * `count` values of the sequence `tsa_serial_seq` in one round trip, as decimal text (a serial
   * may pass 2^53). Order among them is not guaranteed: the caller sorts.
   */
  async nextSerials(count: number): Promise<string[]> {
    const rows: Array<{ serial: string }> = await this.dataSource.query(
      `SELECT nextval('tsa_serial_seq')::text AS serial FROM generate_series(1, $1::int)`,
      [count],
    );
    return rows.map((row) => row.serial);
  }

  caNamed(name: string): Promise<CaEntity | null> {
    return this.dataSource.getRepository(CaEntity).findOneBy({ name });
  }

  activeGeneration(caId: string): Promise<CaGenerationEntity | null> {
    return this.dataSource.getRepository(CaGenerationEntity).findOneBy({ caId, state: 'active' });
  }
}
