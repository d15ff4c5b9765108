import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { CaGenerationEntity } from '../ca/ca-generation.entity';
import { EXTERNAL_KEY_URI } from '../ca/ca.service';
import { CertificateEntity } from '../ca/certificate.entity';
import { KeyVersionEntity } from '../keys/key-version.entity';
import { RevocationReason } from '../pki';

/** A certificate as the search lists it, with the signing key and version it belongs to. */
export interface CertificateSearchRow {
  serial: string;
  kind: string;
  subject_dn: string;
  not_before: Date;
  not_after: Date;
  der: Buffer;
  revoked_at: Date | null;
  revocation_reason: string | null;
  invalidity_date: Date | null;
  key_name: string | null;
  key_version: number | null;
  signatures?: Array<{ seq: string; time: string; auditedAs: string | null }>;
}

/** A revoked certificate as a CRL entry needs it. */
export interface RevokedEntryRow {
  serial: string;
  revoked_at: Date;
  revocation_reason: RevocationReason | null;
  invalidity_date: Date | null;
}

/** Most rows one certificate search answers. */
export const SEARCH_LIMIT = 1000;
/** Revoked certificates read per round trip while a CRL is encoded. */
const CRL_PAGE = 5000;

const SELECT = `SELECT c.serial, c.kind, c.subject_dn, c.not_before, c.not_after, c.der, c.revoked_at, c.revocation_reason, c.invalidity_date,
                       k.name AS key_name, v.version AS key_version`;
const FROM = `FROM certificates c LEFT JOIN key_versions v ON v.id = c.key_version_id LEFT JOIN signing_keys k ON k.id = v.key_id`;

/**
 * SQL over `ca_generations g`: the CRL is missing, half its validity has passed, the configured
 * validity changed, or a certificate was revoked after it was built.
 */
function crlDuePredicate(now: string, hours: string): string {
  return `(g.crl IS NULL
    OR g.crl_this_update + (g.crl_next_update - g.crl_this_update) / 2 <= ${now}::timestamptz
    OR g.crl_next_update - g.crl_this_update <> make_interval(hours => ${hours}::int)
    OR EXISTS (SELECT 1 FROM certificates c WHERE c.issuer_generation_id = g.id AND c.revoked_at >= g.crl_this_update))`;
}

/**
 * Certificates and their revocations as revocation sees them, and the CRL state of CA generations.
 * Methods that take an `EntityManager` run in the caller's transaction; their locks are held until it ends.
 */
@Injectable()
export class RevocationRepository {
  constructor(private readonly dataSource: DataSource) {}

  // ------------------------------------------------------------------ revoking

  /** The certificate with `serial`, locked FOR UPDATE (two revocations of it serialise here). */
  lockCertificate(manager: EntityManager, serial: string): Promise<CertificateEntity | null> {
    return manager.getRepository(CertificateEntity).findOne({ where: { serial }, lock: { mode: 'pessimistic_write' } });
  }

  /**
   * Holds the issuing generation's row FOR SHARE: a CRL build of that issuer takes it FOR UPDATE,
   * so a revocation can never fall between a CRL's read and its thisUpdate.
   */
  async holdIssuerAgainstCrlBuild(manager: EntityManager, issuerGenerationId: string): Promise<void> {
    await manager
      .getRepository(CaGenerationEntity)
      .findOne({ where: { id: issuerGenerationId }, lock: { mode: 'pessimistic_read' } });
  }

  async markCertificateRevoked(
    manager: EntityManager,
    serial: string,
    revocation: { revokedAt: Date; reason: RevocationReason; invalidityDate: Date | null },
  ): Promise<void> {
    await manager.update(
      CertificateEntity,
      { serial },
      {
        revokedAt: revocation.revokedAt,
        revocationReason: revocation.reason,
        invalidityDate: revocation.invalidityDate,
      },
    );
  }

  /** The key version behind a revoked certificate stops signing (state `revoked`). */
  async markKeyVersionRevoked(manager: EntityManager, keyVersionId: string, revokedAt: Date): Promise<void> {
    await manager.update(KeyVersionEntity, { id: keyVersionId }, { state: 'revoked', revokedAt });
  }

  /** What OCSP answers about a serial under an issuer generation (null: not issued there). */
  revocationStatus(
    issuerGenerationId: string,
    serialHex: string,
  ): Promise<Pick<CertificateEntity, 'serial' | 'revokedAt' | 'revocationReason' | 'invalidityDate'> | null> {
    return this.dataSource.getRepository(CertificateEntity).findOne({
      where: { serial: serialHex, issuerGenerationId },
      select: { serial: true, revokedAt: true, revocationReason: true, invalidityDate: true },
    });
  }

  // ------------------------------------------------------------------ CRLs

  /** The generation whose CRL is built, locked FOR UPDATE: replicas building the same CRL serialise here. */
  lockGenerationForCrl(manager: EntityManager, generationId: string): Promise<CaGenerationEntity | null> {
    return manager
      .getRepository(CaGenerationEntity)
      .findOne({ where: { id: generationId }, lock: { mode: 'pessimistic_write' } });
  }

  async caKind(manager: EntityManager, caId: string): Promise<string> {
    const [{ kind }] = await manager.query('SELECT kind FROM cas WHERE id = $1', [caId]);
    return kind;
  }

  /** Whether the generation's CRL must be rebuilt at `now` with the configured validity. */
  async isCrlDue(manager: EntityManager, generationId: string, now: Date, validityHours: number): Promise<boolean> {
    const [row] = await manager.query(
      `SELECT ${crlDuePredicate('$2', '$3')} AS due FROM ca_generations g WHERE g.id = $1`,
      [generationId, now, validityHours],
    );
    return row?.due === true;
  }

  /** The revoked certificates of an issuer generation in serial order, read in pages as the caller consumes them. */
  async *revokedCertificates(manager: EntityManager, generationId: string): AsyncGenerator<RevokedEntryRow> {
    let after = '';
    for (;;) {
      const rows: RevokedEntryRow[] = await manager.query(
        `SELECT serial, revoked_at, revocation_reason, invalidity_date FROM certificates
          WHERE issuer_generation_id = $1 AND revoked_at IS NOT NULL AND serial > $2
          ORDER BY serial LIMIT ${CRL_PAGE}`,
        [generationId, after],
      );
      yield* rows;
      if (rows.length < CRL_PAGE) return;
      after = rows[rows.length - 1].serial;
    }
  }

  async storeCrl(
    manager: EntityManager,
    generationId: string,
    crl: { crlNumber: string; der: Buffer; thisUpdate: Date; nextUpdate: Date },
  ): Promise<void> {
    await manager.update(
      CaGenerationEntity,
      { id: generationId },
      { crlNumber: crl.crlNumber, crl: crl.der, crlThisUpdate: crl.thisUpdate, crlNextUpdate: crl.nextUpdate },
    );
  }

  /**
   * Generations with a key here whose CRL is due: every issuer (not TSA: a TSA signing certificate
   * is a leaf, it issues nothing) still in its validity (plus a day).
   */
  async generationIdsWithCrlDue(now: Date, validityHours: number): Promise<string[]> {
    const rows: Array<{ id: string }> = await this.dataSource.query(
      `SELECT g.id FROM ca_generations g
        WHERE g.certificate IS NOT NULL AND g.key_uri <> '${EXTERNAL_KEY_URI}'
          AND g.ca_id IN (SELECT id FROM cas WHERE kind <> 'tsa') AND g.not_after > $1::timestamptz - interval '1 day' AND ${crlDuePredicate('$1', '$2')}`,
      [now, validityHours],
    );
    return rows.map((row) => row.id);
  }

  // ------------------------------------------------------------------ certificate search

  certificatesBySerial(serial: string): Promise<CertificateSearchRow[]> {
    return this.dataSource.query(`${SELECT} ${FROM} WHERE c.serial = $1`, [serial]);
  }

  certificatesOfKey(keyName: string): Promise<CertificateSearchRow[]> {
    return this.dataSource.query(
      `${SELECT} ${FROM} WHERE k.name = $1 ORDER BY c.not_before, c.serial LIMIT ${SEARCH_LIMIT}`,
      [keyName],
    );
  }

  async keyExists(keyName: string): Promise<boolean> {
    return (await this.dataSource.query('SELECT 1 FROM signing_keys WHERE name = $1', [keyName])).length > 0;
  }

  /** Certificates whose subject DN contains `text` (case-insensitive, LIKE wildcards taken literally), newest first. */
  certificatesWithSubject(text: string): Promise<CertificateSearchRow[]> {
    const pattern = `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    return this.dataSource.query(
      `${SELECT} ${FROM} WHERE c.subject_dn ILIKE $1 ORDER BY c.created_at DESC LIMIT ${SEARCH_LIMIT}`,
      [pattern],
    );
  }

  /**
   * The certificates of the key versions that signed an artifact digest, with those signatures:
   * the `sign` rows of the audit log, through the expression index of migration ConsoleSearch.
   */
  certificatesThatSigned(artifactDigest: string): Promise<CertificateSearchRow[]> {
    return this.dataSource.query(
      `WITH signed AS (
         SELECT e.subject AS key_name, (e.data->>'version')::int AS version,
                json_agg(json_build_object('seq', e.seq::text, 'time', e.time, 'auditedAs', e.data->>'artifactSource') ORDER BY e.seq) AS signatures
           FROM audit_events e
          WHERE e.type = 'sign' AND e.data #>> '{artifact,digest}' = $1
          GROUP BY 1, 2)
       ${SELECT}, s.signatures
         FROM signed s JOIN signing_keys k ON k.name = s.key_name JOIN key_versions v ON v.key_id = k.id AND v.version = s.version
         JOIN certificates c ON c.key_version_id = v.id
        ORDER BY k.name, v.version LIMIT ${SEARCH_LIMIT}`,
      [artifactDigest],
    );
  }

  latestCertificates(): Promise<CertificateSearchRow[]> {
    return this.dataSource.query(`${SELECT} ${FROM} ORDER BY c.created_at DESC LIMIT ${SEARCH_LIMIT}`);
  }
}
