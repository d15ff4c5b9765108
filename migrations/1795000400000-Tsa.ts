import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * TSTInfo serial numbers. A sequence (not a counter row) so replicas allocate without locking each
 * other; CACHE 1 so no replica holds a block of numbers and serials stay increasing in allocation
 * order across replicas. Gaps (a token not sent after its serial was drawn) are allowed by RFC 3161.
 */
export class Tsa1795000400000 implements MigrationInterface {
  name = 'Tsa1795000400000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE SEQUENCE tsa_serial_seq AS bigint START WITH 1 INCREMENT BY 1 MINVALUE 1 NO CYCLE CACHE 1`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP SEQUENCE tsa_serial_seq`);
  }
}
