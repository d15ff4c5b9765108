import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DomainError, ErrorCode } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { BootstrapService } from '../database/bootstrap.service';
import { TokenService } from './token.service';

export const ADMIN_TOKEN_FILE = 'admin.token';

/**
 * On embedded defaults (SIGNET_DEV_BOOTSTRAP), the first start on a database creates an admin
 * token and writes it to <dataDir>/admin.token, readable by the owner only. The log names the
 * file, never the token.
 */
@Injectable()
export class AdminTokenBootstrap implements OnModuleInit {
  private readonly logger = new Logger('AdminTokenBootstrap');

  constructor(
    private readonly bootstrap: BootstrapService,
    private readonly tokens: TokenService,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
  ) {}

  onModuleInit(): void {
    if (!this.config.devBootstrap) return;
    this.bootstrap.register({
      name: 'auth.dev-admin-token',
      order: 100,
      run: async () => void (await this.createAdminToken()),
    });
  }

  async createAdminToken(): Promise<string> {
    const file = path.join(this.config.dataDir, ADMIN_TOKEN_FILE);
    const actor = { tokenName: 'first-start bootstrap' };
    // Written before the token row commits: a token that cannot be handed over is rolled back.
    const writeFile = async (token: string) => writeSecretFile(file, `${token}\n`);
    try {
      await this.tokens.create({ name: 'bootstrap-admin', role: 'admin' }, actor, writeFile);
    } catch (error) {
      if (!(error instanceof DomainError && error.code === ErrorCode.ALREADY_EXISTS)) throw error;
      await this.tokens.create({ name: `bootstrap-admin-${Date.now().toString(36)}`, role: 'admin' }, actor, writeFile);
    }
    this.logger.log(`development admin token written to ${file} (mode 0600); it is not shown anywhere else`);
    return file;
  }
}

/** Creates `file` with mode 0600 whatever the umask, atomically replacing an older one. */
export function writeSecretFile(file: string, content: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(temporary, 'w', 0o600);
  try {
    fs.fchmodSync(fd, 0o600);
    fs.writeSync(fd, content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporary, file);
}
