export const PACKAGE_NAME = '@xattn/transformer'
