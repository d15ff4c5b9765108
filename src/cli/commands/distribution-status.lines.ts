import { DistributionStatusService } from '../../distribution/distribution-status.service';
import { addStatusLines } from './status.command';

/** `signet status`: targets converged, truststore versions and revocation propagation, targets behind. */
addStatusLines((app) => app.get(DistributionStatusService, { strict: false }).statusLines());
