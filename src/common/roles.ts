/** The four roles of API.md's route table. */
export const ROLES = ['admin', 'signer', 'security-officer', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}
