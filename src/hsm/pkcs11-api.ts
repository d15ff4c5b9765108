import type * as pkcs11js from 'pkcs11js';

/**
 * The part of pkcs11js's PKCS11 object the hsm module calls. Typed as a Pick so the fault
 * injector (tests only) can stand in front of the real object with the same shape.
 */
export type Pkcs11Api = Pick<
  pkcs11js.PKCS11,
  | 'C_Initialize' | 'C_Finalize' | 'C_GetInfo'
  | 'C_GetSlotList' | 'C_GetSlotInfo' | 'C_GetTokenInfo' | 'C_GetMechanismList'
  | 'C_InitToken' | 'C_InitPIN'
  | 'C_OpenSession' | 'C_CloseSession' | 'C_CloseAllSessions' | 'C_GetSessionInfo'
  | 'C_Login' | 'C_Logout'
  | 'C_FindObjectsInit' | 'C_FindObjects' | 'C_FindObjectsFinal'
  | 'C_GetAttributeValue' | 'C_SetAttributeValue' | 'C_DestroyObject' | 'C_CopyObject'
  | 'C_GenerateKeyPair' | 'C_GenerateKey' | 'C_GenerateRandom'
  | 'C_SignInit' | 'C_Sign'
  | 'C_EncryptInit' | 'C_Encrypt' | 'C_DecryptInit' | 'C_Decrypt'
  | 'C_WrapKey'
>;

export type Pkcs11Method = keyof Pkcs11Api;
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
