import type * as tf from '@tensorflow/tfjs-core'
import {
  ConfigError,
  decodeSafetensors,
  encodeSafetensors,
  type Module,
  parseSafetensors,
  readBytes,
} from '@xattn/core'
import type { AdamW } from './adamw.js'

const PKG = '@xattn/transformer'

/** The files a checkpoint directory holds. */
export const CHECKPOINT_FILES = {
  model: 'model.safetensors',
  optimizer: 'optimizer.safetensors',
  config: 'config.json',
} as const

export interface SaveCheckpointOptions {
  readonly model: Module
  /** Saved too when given, so that training can resume with its moments and step count. */
  readonly optimizer?: AdamW
  /** Anything JSON-serialisable that rebuilds the model (e.g. its constructor options). */
  readonly config?: unknown
}

/**
 * Encodes a model's state dict as safetensors bytes (names as in `model.stateDict()`, the same
 * names x-transformers uses), so that the file loads with `safetensors.torch.load_file`.
 *
 * @example
 * const bytes = encodeModel(model) // e.g. to download in a browser
 * decodeModelInto(freshModel, bytes)
 */
export function encodeModel(model: Module, metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  return encodeSafetensors(model.stateDict(), metadata)
}

/**
 * Encodes an optimiser's state (`exp_avg.*`, `exp_avg_sq.*`; step and hyperparameters as metadata).
 *
 * @example
 * decodeOptimizerInto(new AdamW(model), encodeOptimizer(optimizer)) // same moments and step
 */
export function encodeOptimizer(optimizer: AdamW): Uint8Array {
  const { tensors, metadata } = optimizer.stateDict()
  return encodeSafetensors(tensors, metadata)
}

/** Restores an optimiser from bytes written by {@link encodeOptimizer}. */
export function decodeOptimizerInto(optimizer: AdamW, bytes: Uint8Array): void {
  const { metadata } = parseSafetensors(bytes)
  const tensors = decodeSafetensors(bytes)
  try {
    optimizer.loadStateDict(tensors, metadata)
  } finally {
    for (const tensor of tensors.values()) tensor.dispose()
  }
}

/** Loads a model's state dict from safetensors bytes (strict: every name and shape must fit). */
export function decodeModelInto(model: Module, bytes: Uint8Array): void {
  const tensors: Map<string, tf.Tensor> = decodeSafetensors(bytes)
  try {
    model.loadStateDict(tensors)
  } finally {
    for (const tensor of tensors.values()) tensor.dispose()
  }
}

/**
 * Writes a checkpoint directory (Node only): `model.safetensors`, `optimizer.safetensors` (when an
 * optimiser is given) and `config.json` (the config plus the step count).
 *
 * @example
 * await saveCheckpoint('checkpoints/run1', { model, optimizer, config: modelOptions })
 */
export async function saveCheckpoint(dir: string, options: SaveCheckpointOptions): Promise<void> {
  const { mkdir, writeFile } = await import('node:fs/promises')
  const { join } = await import('node:path')
  await mkdir(dir, { recursive: true })
  const step = options.optimizer?.stepCount
  await writeFile(
    join(dir, CHECKPOINT_FILES.model),
    encodeModel(options.model, step === undefined ? {} : { step: String(step) }),
  )
  if (options.optimizer !== undefined) {
    await writeFile(join(dir, CHECKPOINT_FILES.optimizer), encodeOptimizer(options.optimizer))
  }
  const config = { config: options.config ?? null, step: step ?? null }
  await writeFile(join(dir, CHECKPOINT_FILES.config), `${JSON.stringify(config, null, 2)}\n`)
}

/** Reads a checkpoint's `config.json` without loading tensors (to rebuild the model first). */
export async function readCheckpointConfig(dir: string): Promise<{ config: unknown; step: number | null }> {
  const { join } = await import('node:path')
  const text = new TextDecoder().decode(await readBytes(join(dir, CHECKPOINT_FILES.config)))
  const parsed = JSON.parse(text) as { config?: unknown; step?: unknown }
  const step = typeof parsed.step === 'number' ? parsed.step : null
  return { config: parsed.config ?? null, step }
}

/**
 * Restores a model (and optimiser, when given) from a directory written by
 * {@link saveCheckpoint}. Build the model from `readCheckpointConfig(dir)` first.
 *
 * @example
 * const { config } = await readCheckpointConfig(dir)
 * const model = build(config)
 * const optimizer = new AdamW(model)
 * await loadCheckpoint(dir, { model, optimizer }) // training resumes at optimizer.stepCount
 */
export async function loadCheckpoint(
  dir: string,
  options: { model: Module; optimizer?: AdamW },
): Promise<void> {
  const { join } = await import('node:path')
  const { existsSync } = await import('node:fs')
  decodeModelInto(options.model, await readBytes(join(dir, CHECKPOINT_FILES.model)))
  if (options.optimizer !== undefined) {
    const path = join(dir, CHECKPOINT_FILES.optimizer)
    if (!existsSync(path)) {
      throw new ConfigError(
        PKG,
        'optimizer',
        `loadCheckpoint: ${path} does not exist (the checkpoint was saved without an optimiser)`,
      )
    }
    decodeOptimizerInto(options.optimizer, await readBytes(path))
  }
}
