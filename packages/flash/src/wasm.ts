export const PACKAGE_NAME = '@xattn/flash'
