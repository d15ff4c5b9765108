import type * as pkcs11js from 'pkcs11js';

/** The functions of pkcs11js's PKCS11 object the hsm module calls. */
export const PKCS11_METHODS = [
  'C_Initialize',
  'C_Finalize',
  'C_GetInfo',
  'C_GetSlotList',
  'C_GetSlotInfo',
  'C_GetTokenInfo',
  'C_GetMechanismList',
  'C_GetMechanismInfo',
  'C_InitToken',
  'C_InitPIN',
  'C_OpenSession',
  'C_CloseSession',
  'C_CloseAllSessions',
  'C_GetSessionInfo',
  'C_Login',
  'C_Logout',
  'C_FindObjectsInit',
  'C_FindObjects',
  'C_FindObjectsFinal',
  'C_GetAttributeValue',
  'C_SetAttributeValue',
  'C_DestroyObject',
  'C_CopyObject',
  'C_GenerateKeyPair',
  'C_GenerateKey',
  'C_GenerateRandom',
  'C_SignInit',
  'C_Sign',
  'C_EncryptInit',
  'C_Encrypt',
  'C_DecryptInit',
  'C_Decrypt',
  'C_WrapKey',
] as const satisfies readonly (keyof pkcs11js.PKCS11)[];

export type Pkcs11Method = (typeof PKCS11_METHODS)[number];

/**
 * The part of pkcs11js's PKCS11 object the hsm module calls. Typed as a Pick so the fault
 * injector (tests only) can stand in front of the real object with the same shape.
 */
export type Pkcs11Api = Pick<pkcs11js.PKCS11, Pkcs11Method>;

/**
 * Token-level functions: in SoftHSM2 they read or write the token's own file (a login rewrites it),
 * so each process makes them one thread at a time (module-instance-lock.ts). They are rare (start,
 * session repair, recovery, close); signing, key generation and object look-ups are not among them.
 */
export const TOKEN_FILE_METHODS: ReadonlySet<Pkcs11Method> = new Set<Pkcs11Method>([
  'C_Initialize',
  'C_Finalize',
  'C_GetSlotList',
  'C_GetSlotInfo',
  'C_GetTokenInfo',
  'C_InitToken',
  'C_InitPIN',
  'C_OpenSession',
  'C_CloseSession',
  'C_CloseAllSessions',
  'C_GetSessionInfo',
  'C_Login',
  'C_Logout',
]);

export type Handle = pkcs11js.Handle;
export type Template = pkcs11js.Template;
export type Mechanism = pkcs11js.Mechanism;

/** Session states (CK_STATE); pkcs11js does not export them. */
export const CKS_RO_PUBLIC_SESSION = 0;
export const CKS_RO_USER_FUNCTIONS = 1;
export const CKS_RW_PUBLIC_SESSION = 2;
export const CKS_RW_USER_FUNCTIONS = 3;
export const CKS_RW_SO_FUNCTIONS = 4;

/** Token and object labels are 32 bytes, blank padded; pkcs11js hands them back with NULs too. */
export function trimPkcs11Label(label: string): string {
  let end = label.length;
  while (end > 0 && (label[end - 1] === ' ' || label[end - 1] === '\0')) end--;
  return label.slice(0, end);
}

/** CK_UTF8CHAR[32] for C_InitToken: pkcs11js passes the JS string as is, so pad it ourselves. */
export function padTokenLabel(label: string): string {
  const bytes = Buffer.byteLength(label, 'utf8');
  if (bytes === 0 || bytes > 32) throw new Error(`token label must be 1..32 bytes (got ${bytes})`);
  return label + ' '.repeat(32 - bytes);
}
