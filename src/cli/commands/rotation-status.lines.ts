import { RotationStatusService } from '../../rotation/rotation-status.service';
import { addStatusLines } from './status.command';

/** `signet status`: rotations (running, overdue, alerts), expiry of CA generations and active leaves, CRL freshness. */
addStatusLines((app) => app.get(RotationStatusService, { strict: false }).statusLines());
