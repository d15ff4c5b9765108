/** The few logging calls the hsm module makes; NestJS's Logger satisfies it. Never given a PIN. */
export interface HsmLogger {
  log(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export const silentLogger: HsmLogger = {
  log: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
