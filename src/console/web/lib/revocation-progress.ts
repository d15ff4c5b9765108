/** The stages a revocation goes through, as the Revoke view lists them, from the server's progress answer. */
export interface ProgressStage {
  done: boolean;
  at: string | null;
  seconds: number | null;
}

export interface RevocationProgress {
  serial: string;
  revokedAt: string | null;
  signingStopped: ProgressStage;
  ocsp: ProgressStage & { status?: 'good' | 'revoked' | 'unknown' };
  crl: ProgressStage & { generation?: string | null; crlNumber?: string | null };
  regions: Array<ProgressStage & { name: string; targets?: number; delivered?: number }>;
  /** Every target of every region holds a bundle with the revocation. */
  everywhere?: ProgressStage;
}

export interface ProgressStep {
  id: string;
  label: string;
  done: boolean;
  at: string | null;
  seconds: number | null;
  note?: string;
}

export function progressSteps(progress: RevocationProgress): ProgressStep[] {
  const step = (id: string, label: string, stage: ProgressStage, note?: string): ProgressStep => ({
    id,
    label,
    done: stage.done,
    at: stage.at,
    seconds: stage.seconds,
    note,
  });
  return [
    step('signing', 'The version stopped signing', progress.signingStopped),
    step(
      'ocsp',
      'OCSP answers revoked',
      progress.ocsp,
      progress.ocsp.status && !progress.ocsp.done ? `answers ${progress.ocsp.status} now` : undefined,
    ),
    step(
      'crl',
      'CRL published with the serial',
      progress.crl,
      progress.crl.generation
        ? `${progress.crl.generation}.crl${progress.crl.crlNumber ? `, CRL number ${progress.crl.crlNumber}` : ''}`
        : undefined,
    ),
    ...progress.regions.map((region) =>
      step(
        `region-${region.name}`,
        `Region ${region.name}: every target holds the new bundle`,
        region,
        region.targets !== undefined ? `${region.delivered ?? 0} of ${region.targets} target(s)` : undefined,
      ),
    ),
  ];
}
