import '@tensorflow/tfjs-backend-cpu'
import '@tensorflow/tfjs-backend-webgl'
import '@tensorflow/tfjs-backend-webgpu'
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm'
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url'
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url'
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url'
import * as tf from '@tensorflow/tfjs-core'
import '@xattn/flash'
import '@xattn/flash/webgpu'
import '@xattn/flash/webgl'
import {
  AdamW,
  AutoregressiveWrapper,
  Decoder,
  fromXTransformers,
  TransformerWrapper,
  warmupCosineSchedule,
} from '@xattn/transformer'
import { CorpusSampler, decode, encode, VOCAB } from './corpus.js'
import type { HeatmapData } from './heatmap.js'

setWasmPaths({
  'tfjs-backend-wasm.wasm': wasmPlain,
  'tfjs-backend-wasm-simd.wasm': wasmSimd,
  'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded,
})

export type BackendChoice = 'webgpu' | 'webgl' | 'wasm' | 'cpu'
export type Positions = 'rotary' | 'absolute' | 'alibi'

/** The model the page builds from its controls. */
export interface ModelSettings {
  readonly attention: 'flash' | 'reference'
  readonly heads: number
  readonly kvHeads: number
  readonly memKv: number
  readonly positions: Positions
  readonly dim: number
  readonly depth: number
  readonly dimHead: number
  readonly seed: number
}

export const DEFAULT_SETTINGS: ModelSettings = {
  attention: 'flash',
  heads: 4,
  kvHeads: 2,
  memKv: 4,
  positions: 'rotary',
  dim: 64,
  depth: 2,
  dimHead: 32,
  seed: 0,
}

/** Training windows are this long; generation may run past it up to {@link MAX_SEQ_LEN}. */
export const TRAIN_SEQ_LEN = 32
export const MAX_SEQ_LEN = 128

/** Activates a backend (all four are bundled); resolves to the name tfjs reports. */
export async function activateBackend(name: BackendChoice): Promise<string> {
  const ok = await tf.setBackend(name)
  if (!ok) throw new Error(`the ${name} backend could not start in this browser`)
  await tf.ready()
  return tf.getBackend()
}

/** Per-step report of {@link PlaygroundSession.train}. */
export interface StepReport {
  readonly step: number
  readonly loss: number
  readonly tokensPerSecond: number
}

/** A model on the page: built from settings or loaded from an x-transformers checkpoint. */
export class PlaygroundSession {
  private optimizer: AdamW | null = null
  private tokensSeen = 0
  private trainMs = 0

  private constructor(
    readonly net: TransformerWrapper,
    readonly ar: AutoregressiveWrapper,
    /** Memory KV slots per attention layer (marked in the heatmap). */
    readonly memSlots: number,
    readonly heads: number,
    readonly layers: number,
    readonly numTokens: number,
    readonly description: string,
  ) {}

  static build(settings: ModelSettings): PlaygroundSession {
    const net = new TransformerWrapper({
      numTokens: VOCAB,
      maxSeqLen: MAX_SEQ_LEN,
      seed: settings.seed,
      attnLayers: new Decoder({
        dim: settings.dim,
        depth: settings.depth,
        heads: settings.heads,
        rotaryPosEmb: settings.positions === 'rotary',
        alibiPosBias: settings.positions === 'alibi',
        seed: settings.seed,
        attn: {
          dimHead: settings.dimHead,
          kvHeads: settings.kvHeads,
          numMemKv: settings.memKv,
          attention: settings.attention,
        },
      }),
    })
    const heads =
      settings.kvHeads === settings.heads
        ? `${settings.heads} heads`
        : `${settings.heads}q/${settings.kvHeads}kv heads`
    const description = [
      `${settings.depth} layers`,
      `dim ${settings.dim}`,
      heads,
      `${settings.memKv} memory KV`,
      `${settings.positions} positions`,
      `${settings.attention} attention`,
      `${(net.parameterCount() / 1000).toFixed(1)}k parameters`,
    ].join(', ')
    return new PlaygroundSession(
      net,
      new AutoregressiveWrapper(net),
      settings.memKv,
      settings.heads,
      settings.depth,
      VOCAB,
      description,
    )
  }

  /**
   * Loads an x-transformers checkpoint: its kwargs (`{ layers, layers_kwargs, wrapper }`, or a
   * fixture's `case.json` with them under `config`) and its `model.safetensors`.
   */
  static async load(
    configJson: unknown,
    weights: Uint8Array,
    attention: 'flash' | 'reference',
  ): Promise<PlaygroundSession> {
    const raw = configJson as { config?: unknown }
    const config = (raw.config ?? raw) as {
      layers_kwargs?: Record<string, unknown>
      wrapper?: Record<string, unknown>
    }
    const net = await fromXTransformers({ config: config as never, weights, attention })
    const kwargs = config.layers_kwargs ?? {}
    const memSlots = Number(kwargs.attn_num_mem_kv ?? 0)
    const heads = Number(kwargs.heads ?? 8)
    const depth = Number(kwargs.depth ?? 1)
    const numTokens = Number(config.wrapper?.num_tokens ?? VOCAB)
    return new PlaygroundSession(
      net,
      new AutoregressiveWrapper(net),
      memSlots,
      heads,
      depth,
      numTokens,
      `x-transformers checkpoint: ${depth} layers, ${heads} heads, ${memSlots} memory KV, ${numTokens} tokens, ${attention} attention`,
    )
  }

  get steps(): number {
    return this.optimizer?.stepCount ?? 0
  }

  /**
   * Trains `steps` more optimiser steps on windows of `text`; reports after every step. The loop
   * is the library's `train` (AdamW, warmup + cosine, global-norm clipping) written with
   * asynchronous reads only: tfjs-webgpu's synchronous read path (a canvas copy) loses the device
   * under headless SwiftShader, and async reads let the page repaint between steps anyway.
   */
  async train(
    text: string,
    steps: number,
    batch: number,
    onStep: (report: StepReport) => boolean | undefined,
  ): Promise<number[]> {
    if (this.numTokens < VOCAB) {
      throw new Error(`training needs a ${VOCAB}-token vocabulary (this model has ${this.numTokens})`)
    }
    const lr = 3e-3
    this.optimizer ??= new AdamW(this.net, { lr, weightDecay: 0.01 })
    const optimizer = this.optimizer
    const sampler = new CorpusSampler(text, TRAIN_SEQ_LEN, 1 + this.steps)
    const schedule = warmupCosineSchedule({ peakLr: lr, warmupSteps: 10, totalSteps: 400, minLr: lr / 10 })
    const named = [...this.net.namedParameters()].filter(([, v]) => v.trainable)
    const nameOf = new Map(named.map(([name, v]) => [v.name, name]))
    const losses: number[] = []
    this.net.train()
    for (let s = 0; s < steps; s++) {
      const started = performance.now()
      const tokens = tf.tensor2d(sampler.batch(batch), [batch, TRAIN_SEQ_LEN + 1], 'int32')
      const { value, grads } = tf.variableGrads(
        () => this.ar.loss(tokens),
        named.map(([, v]) => v),
      )
      tokens.dispose()
      const clipped = new Map<string, tf.Tensor>()
      tf.tidy(() => {
        // Clip by the global norm (max 1) on the device: no read-back needed for the coefficient.
        const list = Object.values(grads)
        // Pairwise adds, not addN: webgpu's AddN binds every input, past the 8 storage buffers a
        // shader stage may have.
        const norm = tf.sqrt(
          list.map((g) => tf.sum(tf.square(g))).reduce((a, x) => tf.add(a, x), tf.scalar(0)),
        )
        const coefficient = tf.minimum(tf.scalar(1), tf.div(tf.scalar(1), tf.add(norm, tf.scalar(1e-6))))
        for (const [variableName, grad] of Object.entries(grads)) {
          const name = nameOf.get(variableName)
          if (name !== undefined) clipped.set(name, tf.keep(tf.mul(grad, coefficient)))
        }
      })
      tf.dispose(Object.values(grads))
      optimizer.step(clipped, { lr: schedule(optimizer.stepCount) })
      tf.dispose([...clipped.values()])
      const loss = (await value.data())[0] as number
      value.dispose()
      losses.push(loss)
      this.tokensSeen += batch * TRAIN_SEQ_LEN
      this.trainMs += performance.now() - started
      const stop = onStep({
        step: optimizer.stepCount,
        loss,
        tokensPerSecond: this.tokensSeen / (this.trainMs / 1000),
      })
      if (stop === false) break
      // Let the page repaint between steps.
      await new Promise((resolve) => setTimeout(resolve, 0))
    }
    this.net.eval()
    return losses
  }

  /** Greedy (or sampled) continuation of a prompt with the KV cache. */
  async generate(
    prompt: string,
    count: number,
    temperature = 0,
  ): Promise<{ text: string; tokensPerSecond: number }> {
    const ids = this.promptIds(prompt, count)
    const input = tf.tensor2d([ids], [1, ids.length], 'int32')
    const started = performance.now()
    try {
      const out = await this.ar.generate(input, { seqLen: count, temperature, cache: true, seed: 1 })
      const values = Array.from(await out.data())
      out.dispose()
      const seconds = (performance.now() - started) / 1000
      return { text: decode(values), tokensPerSecond: count / seconds }
    } finally {
      input.dispose()
    }
  }

  /** Post-softmax attention of one layer and head over `text` (memory slots first). */
  async attentionMap(text: string, layer: number, head: number): Promise<HeatmapData> {
    const ids = this.promptIds(text, 0)
    const tokens = tf.tensor2d([ids], [1, ids.length], 'int32')
    this.net.eval()
    const result = this.net.forwardWithIntermediates(tokens)
    tokens.dispose()
    try {
      const maps = result.attention
      const map = maps[Math.min(layer, maps.length - 1)]
      if (map === undefined) throw new Error('this model returned no attention maps')
      const [, h, n, m] = map.shape
      const one = tf.tidy(() => tf.slice(map, [0, Math.min(head, h - 1), 0, 0], [1, 1, n, m]))
      const values = await one.data()
      one.dispose()
      return { values, rows: n, cols: m, memSlots: m - n, labels: Array.from(decode(ids)) }
    } finally {
      tf.dispose([
        ...(result.logits === null ? [] : [result.logits]),
        result.embeddings,
        ...result.hiddens,
        ...result.attention,
      ])
      for (const entry of result.cache) {
        for (const value of Object.values(entry)) if (value instanceof tf.Tensor) value.dispose()
      }
    }
  }

  private promptIds(text: string, room: number): number[] {
    const numeric = /^\s*\d+(\s+\d+)*\s*$/.test(text)
    const ids = numeric
      ? text
          .trim()
          .split(/\s+/)
          .map((x) => Number(x) % this.numTokens)
      : encode(text, this.numTokens)
    const keep = Math.max(1, this.net.maxSeqLen - room)
    const clipped = ids.slice(-keep)
    return clipped.length > 0 ? clipped : [0]
  }

  dispose(): void {
    this.optimizer?.dispose?.()
    this.net.dispose()
  }
}
