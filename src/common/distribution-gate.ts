/**
 * The rotation gate (root rollover): a new hierarchy issues nothing until every distribution
 * target marked `required` has acknowledged a truststore bundle containing its root. Rotation
 * reads this port; the distribution module implements it from its delivery records.
 */
export interface RootAcknowledgement {
  /** True when every required target has delivered (and read back) a bundle holding the root. */
  acknowledged: boolean;
  /** Required targets that have not yet, as "region/target". */
  pending: string[];
}

export interface DistributionGate {
  /** @param rootSha256 lower-case hex SHA-256 fingerprint of the root certificate's DER. */
  requiredTargetsHaveRoot(rootSha256: string): Promise<RootAcknowledgement>;
}

export const DISTRIBUTION_GATE = Symbol('DISTRIBUTION_GATE');
