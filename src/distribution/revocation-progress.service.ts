import { Injectable } from '@nestjs/common';
import { normalizeSerialHex } from '../pki';
import { DomainError, ErrorCode } from '../common/errors';
import { RevocationService } from '../revocation/revocation.service';
import { RevocationProgressRepository } from './revocation-progress.repository';

/** One stage of a revocation's way out: done or not, when, and how long after the revocation. */
export interface ProgressStage {
  done: boolean;
  at: string | null;
  /** Seconds from the revocation to `at`. */
  seconds: number | null;
}

export interface TargetProgress extends ProgressStage {
  name: string;
  truststore: string;
  /** The first truststore version carrying the revocation (null: not made yet), and what the target holds now. */
  version: number | null;
  deliveredVersion: number | null;
}

export interface RegionProgress extends ProgressStage {
  name: string;
  targets: number;
  delivered: number;
  targetDetails: TargetProgress[];
}

export interface RevocationProgress {
  serial: string;
  /** null: not revoked (every stage not done). */
  revokedAt: string | null;
  reason: string | null;
  /** The key version is revoked in the same transaction as the certificate: it signs no more. */
  signingStopped: ProgressStage & { key: string | null; keyVersion: number | null };
  /** What the OCSP responder reads for this serial now (its cached answers are dropped on every replica at commit). */
  ocsp: ProgressStage & { status: 'good' | 'revoked' | 'unknown' };
  /** The issuer generation's current CRL lists the serial (published at or after the revocation); `at` is that CRL's thisUpdate. */
  crl: ProgressStage & { generation: string | null; crlNumber: string | null };
  /** Per region, the targets of every truststore that carries the issuer's CRL. */
  regions: RegionProgress[];
  /** Every target of every region holds a bundle with the revocation. */
  everywhere: ProgressStage;
}

/**
 * GET /v1/certificates/{serial}/revocation: how far a revocation has gone, read from the database
 * every replica shares: signing stopped → OCSP answers revoked → CRL published → each region's
 * targets hold a truststore version that carries it, with the time each took.
 */
@Injectable()
export class RevocationProgressService {
  constructor(
    private readonly repository: RevocationProgressRepository,
    private readonly revocations: RevocationService,
  ) {}

  async progress(serialInput: string): Promise<RevocationProgress> {
    const serial = normalizeSerialHex(serialInput);
    const cert = await this.repository.certificate(serial);
    if (!cert) throw new DomainError(ErrorCode.NOT_FOUND, `no certificate with serial ${serial}`);
    const revokedAt = cert.revoked_at;
    const stage = (done: boolean, at: Date | null): ProgressStage => ({
      done,
      at: done && at ? at.toISOString() : null,
      seconds: done && at && revokedAt ? Math.max(0, (at.getTime() - revokedAt.getTime()) / 1000) : null,
    });
    const ocspStatus = cert.issuer_generation_id
      ? (await this.revocations.status(cert.issuer_generation_id, serial)).status
      : 'unknown';
    const crlDone =
      revokedAt !== null && cert.crl_this_update !== null && cert.crl_this_update.getTime() >= revokedAt.getTime();
    const regions = revokedAt && cert.generation ? await this.regions(revokedAt, cert.generation, stage) : [];
    const lastRegion = regions.reduce<Date | null>(
      (latest, region) =>
        region.at && (!latest || Date.parse(region.at) > latest.getTime()) ? new Date(region.at) : latest,
      null,
    );
    return {
      serial,
      revokedAt: revokedAt?.toISOString() ?? null,
      reason: cert.revocation_reason,
      signingStopped: {
        ...stage(
          revokedAt !== null && (cert.key_name === null || cert.key_revoked_at !== null),
          cert.key_revoked_at ?? revokedAt,
        ),
        key: cert.key_name,
        keyVersion: cert.key_version,
      },
      ocsp: { ...stage(ocspStatus === 'revoked', revokedAt), status: ocspStatus },
      crl: {
        ...stage(crlDone, cert.crl_this_update),
        generation: cert.generation,
        crlNumber: crlDone ? cert.crl_number : null,
      },
      regions,
      everywhere: stage(
        revokedAt !== null && crlDone && regions.every((region) => region.done),
        regions.length === 0 ? cert.crl_this_update : lastRegion,
      ),
    };
  }

  /**
   * Truststores whose current version holds the issuer generation's CRL must carry the revocation;
   * the first version that does is the first whose CRL of that generation was made at or after it
   * (a CRL build and a revocation of its issuer are serialised, so such a CRL lists the serial).
   * Until that version exists, the truststore's targets are not done (version null).
   */
  private async regions(
    revokedAt: Date,
    generation: string,
    stage: (done: boolean, at: Date | null) => ProgressStage,
  ): Promise<RegionProgress[]> {
    const rows = await this.repository.targetsCarrying(revokedAt, generation);
    const regions = new Map<string, RegionProgress>();
    for (const row of rows) {
      const done = row.version !== null && row.delivered_version !== null && row.delivered_version >= row.version;
      const target: TargetProgress = {
        name: row.name,
        truststore: row.truststore,
        version: row.version,
        deliveredVersion: row.delivered_version,
        ...stage(done, row.first_delivered_at),
      };
      let region = regions.get(row.region);
      if (!region)
        regions.set(
          row.region,
          (region = {
            name: row.region,
            targets: 0,
            delivered: 0,
            targetDetails: [],
            done: false,
            at: null,
            seconds: null,
          }),
        );
      region.targets++;
      if (done) region.delivered++;
      region.targetDetails.push(target);
    }
    for (const region of regions.values()) {
      const latest = region.targetDetails.reduce<Date | null>(
        (max, t) => (t.at && (!max || Date.parse(t.at) > max.getTime()) ? new Date(t.at) : max),
        null,
      );
      Object.assign(region, stage(region.delivered === region.targets, latest));
    }
    return [...regions.values()];
  }
}
