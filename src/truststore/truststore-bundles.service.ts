import { Injectable } from '@nestjs/common';
import { DomainError, ErrorCode } from '../common/errors';
import {
  BUNDLE_FORMATS,
  isBundleFormat,
  LayerKind,
  LAYERS,
  LayerSpec,
  renderLayer,
  VersionInfo,
} from './bundle-formats';
import { TruststoreService } from './truststore.service';
import { parseCanonical } from './truststore-content';

export interface RenderedBundle {
  truststore: string;
  version: number;
  digest: string;
  createdAt: string;
  layers: Array<{ kind: LayerKind; spec: LayerSpec; content: Buffer }>;
}

const RENDER_CACHE_SIZE = 32;

/**
 * A stored version in its bundle formats, for `GET …/bundle` and the distribution targets.
 * A version never changes, so each is rendered once per process (the last few are kept).
 */
@Injectable()
export class TruststoreBundlesService {
  private readonly rendered = new Map<string, Promise<RenderedBundle>>();

  constructor(private readonly truststores: TruststoreService) {}

  /** One format of a version (default: the current one) for `GET …/bundle`. */
  async bundle(
    name: string,
    format: unknown,
    version?: number,
  ): Promise<{ content: Buffer; spec: LayerSpec; version: number; digest: string; truststore: string }> {
    if (!isBundleFormat(format)) {
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        `bundle: 'format' must be one of ${BUNDLE_FORMATS.join(', ')}`,
        { field: 'format' },
      );
    }
    const truststore = await this.truststores.byName(name);
    const rendered = await this.render(truststore.id, version ?? truststore.currentVersion, [format]);
    const layer = rendered.layers[0];
    return {
      content: layer.content,
      spec: layer.spec,
      version: rendered.version,
      digest: rendered.digest,
      truststore: truststore.name,
    };
  }

  /** The layers of a version, rendered once per process and version (immutable). */
  async render(truststoreId: string, version: number, kinds: readonly LayerKind[]): Promise<RenderedBundle> {
    const key = `${truststoreId}:${version}`;
    let all = this.rendered.get(key);
    if (!all) {
      all = this.renderAll(truststoreId, version);
      all.catch(() => this.rendered.delete(key));
      this.rendered.set(key, all);
      while (this.rendered.size > RENDER_CACHE_SIZE) this.rendered.delete(this.rendered.keys().next().value!);
    }
    const bundle = await all;
    return { ...bundle, layers: kinds.map((kind) => bundle.layers.find((l) => l.kind === kind)!) };
  }

  private async renderAll(truststoreId: string, version: number): Promise<RenderedBundle> {
    const row = await this.truststores.versionOf(truststoreId, version);
    const truststore = await this.truststores.byId(truststoreId);
    const content = parseCanonical(row.canonical, row.digest);
    const info: VersionInfo = { version: row.version, digest: row.digest, createdAt: row.createdAt.toISOString() };
    const kinds = Object.keys(LAYERS) as LayerKind[];
    const layers = await Promise.all(
      kinds.map(async (kind) => ({ kind, spec: LAYERS[kind], content: await renderLayer(kind, content) })),
    );
    return { truststore: truststore.name, version: row.version, digest: row.digest, createdAt: info.createdAt, layers };
  }
}
