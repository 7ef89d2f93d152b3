export const PACKAGE_NAME = '@xattn/kv-heads'
