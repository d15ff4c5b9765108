import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';

export interface CertificateRow {
  serial: string;
  revoked_at: Date | null;
  revocation_reason: string | null;
  issuer_generation_id: string | null;
  generation: string | null;
  crl_number: string | null;
  crl_this_update: Date | null;
  key_name: string | null;
  key_version: number | null;
  key_revoked_at: Date | null;
}

export interface CarryingTargetRow {
  region: string;
  name: string;
  truststore: string;
  version: number | null;
  delivered_version: number | null;
  first_delivered_at: Date | null;
}

/**
 * The reads behind a revocation's progress (revocation-progress.service.ts): the certificate with
 * its issuer's CRL and its key version, and the targets of the truststores that must carry it.
 */
@Injectable()
export class RevocationProgressRepository {
  constructor(private readonly dataSource: DataSource) {}

  /** The certificate with the serial (normalised hex), or undefined. */
  async certificate(serial: string): Promise<CertificateRow | undefined> {
    const [cert]: CertificateRow[] = await this.dataSource.query(
      `SELECT c.serial, c.revoked_at, c.revocation_reason, c.issuer_generation_id, g.name AS generation, g.crl_number::text AS crl_number, g.crl_this_update,
              k.name AS key_name, v.version AS key_version, v.revoked_at AS key_revoked_at
         FROM certificates c
         LEFT JOIN ca_generations g ON g.id = c.issuer_generation_id
         LEFT JOIN key_versions v ON v.id = c.key_version_id
         LEFT JOIN signing_keys k ON k.id = v.key_id
        WHERE c.serial = $1`,
      [serial],
    );
    return cert;
  }

  /**
   * Every target of a truststore whose current version holds the generation's CRL, with the first
   * version of that truststore carrying the revocation (null: not made yet) and when the target
   * first held it.
   */
  async targetsCarrying(revokedAt: Date, generation: string): Promise<CarryingTargetRow[]> {
    const rows: CarryingTargetRow[] = await this.dataSource.query(
      `WITH relevant AS (
         SELECT s.id, s.name FROM truststores s
           JOIN truststore_versions cv ON cv.truststore_id = s.id AND cv.version = s.current_version
          WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(convert_from(cv.canonical, 'UTF8')::jsonb -> 'crls') e WHERE e ->> 'generation' = $2)),
       carrying AS (
         SELECT r.id, r.name,
                (SELECT min(v.version) FROM truststore_versions v, jsonb_array_elements(convert_from(v.canonical, 'UTF8')::jsonb -> 'crls') e
                  WHERE v.truststore_id = r.id AND v.created_at >= $1 AND e ->> 'generation' = $2 AND (e ->> 'thisUpdate')::timestamptz >= $1) AS version
           FROM relevant r)
       SELECT rg.name AS region, t.name, c.name AS truststore, c.version, t.delivered_version,
              (SELECT min(d.delivered_at) FROM distribution_deliveries d WHERE d.target_id = t.id AND d.version >= c.version) AS first_delivered_at
         FROM carrying c
         JOIN distribution_targets t ON t.truststore_id = c.id
         JOIN distribution_regions rg ON rg.id = t.region_id
        ORDER BY rg.name, t.name`,
      [revokedAt, generation],
    );
    return rows;
  }
}
