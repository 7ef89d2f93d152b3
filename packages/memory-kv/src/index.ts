export const PACKAGE_NAME = '@xattn/memory-kv'
