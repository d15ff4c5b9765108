import { Injectable, OnModuleInit } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { describeDatabaseError } from '../common/database-errors';
import { HealthService } from '../observability/health.service';

@Injectable()
export class DatabaseHealth implements OnModuleInit {
  constructor(
    private readonly dataSource: DataSource,
    private readonly health: HealthService,
  ) {}

  onModuleInit(): void {
    this.health.register('database', () => this.check());
  }

  async check(timeoutMs = 2000): Promise<{ ok: boolean; error?: string }> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.dataSource.query('SELECT 1'),
        new Promise(
          (_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)),
        ),
      ]);
      return { ok: true };
    } catch (error) {
      return { ok: false, error: describeDatabaseError(error) };
    } finally {
      clearTimeout(timer);
    }
  }
}
