import { Body, Controller, Get, HttpCode, Inject, Post } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { DataSource } from 'typeorm';
import { Public } from '../common/access.decorators';
import { HSM_RECONCILER, HsmReconciler } from '../hsm/hsm-reconciler';
import { KEY_MANAGER, KeyManager } from '../hsm/key-manager';
import { TestTickDto } from './dto/rotation.dto';
import { reconcileHsm } from './hsm-objects';
import { RotationScheduler, TickReport } from './rotation.scheduler';

/**
 * Test-only endpoints, mounted only when SIGNET_TEST_HOOKS=true, which loadConfig refuses unless
 * NODE_ENV=test: inject a scheduler tick at a chosen instant, and read the HSM's key objects with
 * the reconciliation report. Never part of a production build's routes or OpenAPI document.
 */
@ApiExcludeController()
@Controller('v1/test-hooks')
export class RotationTestHooksController {
  constructor(
    private readonly scheduler: RotationScheduler,
    private readonly dataSource: DataSource,
    @Inject(KEY_MANAGER) private readonly keys: KeyManager,
    @Inject(HSM_RECONCILER) private readonly reconciler: HsmReconciler,
  ) {}

  @Post('rotation/tick')
  @HttpCode(200)
  @Public()
  tick(@Body() body: TestTickDto): Promise<TickReport> {
    return this.scheduler.tick(body?.now ? new Date(body.now) : undefined);
  }

  @Get('hsm')
  @Public()
  async hsm(): Promise<{
    keys: Array<{ label: string; id: string; role: string; hasPrivateKey: boolean }>;
    reconciliation: Awaited<ReturnType<typeof reconcileHsm>>;
  }> {
    const keys = await this.keys.listKeys();
    return {
      keys: keys.map((k) => ({ label: k.label, id: k.id, role: k.role, hasPrivateKey: k.hasPrivateKey })),
      reconciliation: await reconcileHsm(this.dataSource, this.reconciler),
    };
  }
}
