import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { CaGenerationEntity } from './ca-generation.entity';
import { CaEntity, CaKind } from './ca.entity';

/** A CA key generation with a certificate, and the name of its CA. */
export interface CertifiedGeneration {
  caName: string;
  generation: CaGenerationEntity & { certificate: Buffer };
}

/** Reads and writes of the CA aggregate (CAs and their key generations). */
@Injectable()
export class CaRepository {
  constructor(private readonly dataSource: DataSource) {}

  /**
   * Every generation that has a certificate, of every CA of `kind`: CAs oldest first, each CA's
   * generations in order (truststore bundles and the TSA list them in this order).
   */
  async certifiedGenerationsOfKind(kind: CaKind): Promise<CertifiedGeneration[]> {
    const cas = await this.dataSource.getRepository(CaEntity).find({ where: { kind }, order: { createdAt: 'ASC' } });
    const result: CertifiedGeneration[] = [];
    for (const ca of cas) {
      const generations = await this.dataSource.getRepository(CaGenerationEntity).find({ where: { caId: ca.id }, order: { generation: 'ASC' } });
      for (const generation of generations) {
        if (generation.certificate) result.push({ caName: ca.name, generation: generation as CertifiedGeneration['generation'] });
      }
    }
    return result;
  }
}
