import { Module } from '@nestjs/common';
import { DomainEventBus } from './domain-events';

/** One bus per application: every module that publishes imports this one, and Nest shares its instance. */
@Module({ providers: [DomainEventBus], exports: [DomainEventBus] })
export class DomainEventsModule {}
