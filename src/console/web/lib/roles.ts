/**
 * What each role may see and do in the console, mirroring API.md's role table. The page only
 * hides and disables; the server decides (a request the role may not make still answers 403).
 */
export type Role = 'admin' | 'signer' | 'security-officer' | 'auditor';

export interface Capabilities {
  /** Overview, Fleet, Rotations, Audit, certificate search: the read routes. */
  read: boolean;
  revoke: boolean;
  /** POST /v1/distribution/sync. */
  sync: boolean;
  /** POST /v1/rotations/{id}/force (the root-rollover gate). */
  forceRotation: boolean;
  /** POST /v1/audit/checkpoints. */
  checkpoint: boolean;
}

export function capabilitiesOf(role: Role): Capabilities {
  const officer = role === 'admin' || role === 'security-officer';
  return {
    read: officer || role === 'auditor',
    revoke: officer,
    sync: officer,
    forceRotation: role === 'admin',
    checkpoint: officer,
  };
}
