export const PACKAGE_NAME = '@xattn/core'
