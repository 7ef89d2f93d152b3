import { Module } from '@xattn/core'

/**
 * A container whose children are named by the caller (numbers give `0.…`, `1.…`), like
 * PyTorch's `nn.ModuleList` / `nn.Sequential`: it only shapes state-dict names.
 */
export class ModuleList extends Module {
  /** Registers `child` under `name` and returns it. */
  add<M extends Module>(name: string | number, child: M): M {
    return this.addModule(String(name), child)
  }
}
