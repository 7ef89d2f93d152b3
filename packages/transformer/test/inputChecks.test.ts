import * as tf from '@tensorflow/tfjs-core'
import { ConfigError, SeededRandom, ShapeContractError } from '@xattn/core'
import { describeEachBackend, expectClose, expectNoLeaks } from '@xattn/test-utils'
import { describe, expect, it, vi } from 'vitest'
import {
  Attention,
  type AttentionCache,
  AutoregressiveWrapper,
  Decoder,
  DynamicPositionBias,
  Encoder,
  FeedForward,
  TransformerWrapper,
} from '../src/index.js'

// Bad options and bad inputs at the package's boundaries: each must throw a ConfigError (or a
// ShapeContractError for non-finite values) naming the option or tensor, before any tensor work,
// and leave no tensor behind.

/** Asserts `build` throws exactly `error` and creates no tensor on the way. */
function rejects(build: () => unknown, error: Error): void {
  expectNoLeaks(() => expect(build).toThrow(error))
  try {
    build()
  } catch (thrown) {
    expect(thrown).toBeInstanceOf(error.constructor)
    if (error instanceof ConfigError) expect((thrown as ConfigError).option).toBe(error.option)
  }
}

describe('unknown options are rejected by name, before any tensor', () => {
  const stack = { dim: 16, depth: 1, heads: 4, attn: { dimHead: 8 } }

  it('a misspelt Decoder option, with the closest known name', () => {
    rejects(
      () => new Decoder({ ...stack, rotaryPosEmbb: true } as never),
      new ConfigError(
        '@xattn/transformer',
        'rotaryPosEmbb',
        "Decoder: unknown option 'rotaryPosEmbb' (did you mean 'rotaryPosEmb'?)",
      ),
    )
  })

  it('every unknown key of an Encoder, and one far from any name gets no suggestion', () => {
    rejects(
      () => new Encoder({ ...stack, crossAtend: true, zzz: 1 } as never),
      new ConfigError(
        '@xattn/transformer',
        'crossAtend',
        "Encoder: unknown options 'crossAtend' (did you mean 'crossAttend'?), 'zzz'",
      ),
    )
  })

  it('nested attn, crossAttn and ff options', () => {
    rejects(
      () => new Decoder({ ...stack, attn: { dimHaed: 8 } } as never),
      new ConfigError(
        '@xattn/transformer',
        'attn.dimHaed',
        "Decoder: unknown option 'attn.dimHaed' (did you mean 'attn.dimHead'?)",
      ),
    )
    rejects(
      () => new Decoder({ ...stack, crossAttend: true, crossAttn: { dimContex: 8 } } as never),
      new ConfigError(
        '@xattn/transformer',
        'crossAttn.dimContex',
        "Decoder: unknown option 'crossAttn.dimContex' (did you mean 'crossAttn.dimContext'?)",
      ),
    )
    rejects(
      () => new Decoder({ ...stack, ff: { glu: true, mul: 2 } } as never),
      new ConfigError(
        '@xattn/transformer',
        'ff.mul',
        "Decoder: unknown option 'ff.mul' (did you mean 'ff.mult'?)",
      ),
    )
    // `heads` belongs to the stack, not to its `attn` options.
    rejects(
      () => new Decoder({ ...stack, attn: { dimHead: 8, heads: 2 } } as never),
      new ConfigError(
        '@xattn/transformer',
        'attn.heads',
        "Decoder: unknown option 'attn.heads' (set heads on the stack itself)",
      ),
    )
  })

  it('Attention, FeedForward and TransformerWrapper', () => {
    rejects(
      () => new Attention({ dim: 16, heads: 4, dimHead: 8, casual: true } as never),
      new ConfigError(
        '@xattn/transformer',
        'casual',
        "Attention: unknown option 'casual' (did you mean 'causal'?)",
      ),
    )
    rejects(
      () => new FeedForward({ dim: 16, swich: true } as never),
      new ConfigError(
        '@xattn/transformer',
        'swich',
        "FeedForward: unknown option 'swich' (did you mean 'swish'?)",
      ),
    )
    const layers = new Decoder(stack)
    rejects(
      () => new TransformerWrapper({ numTokens: 20, maxSeqLen: 8, attnLayers: layers, numTokns: 3 } as never),
      new ConfigError(
        '@xattn/transformer',
        'numTokns',
        "TransformerWrapper: unknown option 'numTokns' (did you mean 'numTokens'?)",
      ),
    )
    layers.dispose()
  })

  it('known options (every attention and feedforward option at once) still build', () => {
    const decoder = new Decoder({
      ...stack,
      crossAttend: true,
      attn: { dimHead: 8, kvHeads: 2, numMemKv: 1, qkNorm: true, gateValues: true, maxAttendPast: 3 },
      crossAttn: { dimContext: 12 },
      ff: { glu: true, mult: 2 },
    })
    decoder.dispose()
  })
})

describe('a stack rejected part-way leaves nothing behind', () => {
  it('kvHeads that do not divide heads (after the first norm was built)', () => {
    rejects(
      () => new Decoder({ dim: 16, depth: 2, heads: 4, attn: { dimHead: 8, kvHeads: 3 } }),
      new ConfigError(
        '@xattn/core',
        'kvHeads',
        '@xattn/core: headLayout: kvHeads must divide heads, got heads=4, kvHeads=3',
      ),
    )
  })

  it('an invalid option of a later layer (maxAttendPast, dimOut) with rotary and dynamic bias built', () => {
    expectNoLeaks(() =>
      expect(
        () =>
          new Decoder({
            dim: 16,
            depth: 2,
            heads: 4,
            rotaryPosEmb: true,
            dynamicPosBias: true,
            attn: { dimHead: 32, maxAttendPast: -1 },
          }),
      ).toThrow('Attention: maxAttendPast must be a non-negative integer, got -1'),
    )
    expectNoLeaks(() =>
      expect(() => new Attention({ dim: 16, heads: 4, dimHead: 8, dimOut: 0 })).toThrow(
        'Attention: dimOut must be a positive integer, got 0',
      ),
    )
  })

  it('a wrapper rejected after its checks leaves the given stack intact', () => {
    const layers = new Decoder({ dim: 16, depth: 1, heads: 4, attn: { dimHead: 8 } })
    expectNoLeaks(() =>
      expect(
        () =>
          new TransformerWrapper({
            numTokens: 20,
            maxSeqLen: 8,
            attnLayers: layers,
            returnOnlyEmbed: true,
            sigsoftmaxLogits: true,
          }),
      ).toThrow('TransformerWrapper: sigsoftmaxLogits needs logits (not returnOnlyEmbed)'),
    )
    layers.dispose()
  })
})

describeEachBackend('token ids and context values', () => {
  const build = (options: { numMemoryTokens?: number; crossAttend?: boolean } = {}) =>
    new TransformerWrapper({
      numTokens: 20,
      maxSeqLen: 8,
      ...(options.numMemoryTokens === undefined ? {} : { numMemoryTokens: options.numMemoryTokens }),
      attnLayers: new Decoder({
        dim: 16,
        depth: 1,
        heads: 4,
        crossAttend: options.crossAttend ?? false,
        attn: { dimHead: 8 },
      }),
    }).eval()
  const ids = (rows: number[][]) => tf.tensor2d(rows, [rows.length, rows[0]?.length ?? 0], 'int32')

  it('forward rejects ids outside [0, numTokens), naming tokens, the range and where', () => {
    const model = build()
    for (const [rows, message] of [
      [[[1, 20]], 'TransformerWrapper: tokens must be token ids in [0, 20) (numTokens=20), got 20 at [0, 1]'],
      [
        [
          [1, 2],
          [3, -1],
        ],
        'TransformerWrapper: tokens must be token ids in [0, 20) (numTokens=20), got -1 at [1, 1]',
      ],
    ] as const) {
      const tokens = ids(rows.map((r) => [...r]))
      rejects(() => model.forward(tokens), new ConfigError('@xattn/transformer', 'tokens', message))
      tokens.dispose()
    }
    // The boundaries themselves are fine.
    const edge = ids([[0, 19]])
    tf.dispose(model.forward(edge))
    edge.dispose()
    model.dispose()
  })

  it('forward rejects an empty sequence at the boundary, naming tokens and its shape', () => {
    const model = build()
    for (const shape of [
      [1, 0],
      [0, 3],
    ] as const) {
      const tokens = tf.zeros([...shape], 'int32')
      rejects(
        () => model.forward(tokens),
        new ConfigError(
          '@xattn/transformer',
          'tokens',
          `TransformerWrapper: tokens must hold at least one row and one position, got [${shape.join(',')}]`,
        ),
      )
      tokens.dispose()
    }
    model.dispose()
  })

  it('forward rejects NaN or Infinity in the cross-attention context, naming it', () => {
    const model = build({ crossAttend: true })
    const tokens = ids([[1, 2]])
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const context = tf.tensor3d(
        [0, 1, 2, bad].flatMap((x) => new Array<number>(4).fill(x)),
        [1, 4, 4],
      )
      const wide = tf.tile(context, [1, 1, 4])
      rejects(
        () => model.forward(tokens, { context: wide }),
        new ShapeContractError(
          '@xattn/transformer AttentionLayers.forward',
          'context',
          'context holds NaN or Infinity values (shape [1,4,16]); every element must be finite',
        ),
      )
      tf.dispose([context, wide])
    }
    tokens.dispose()
    model.dispose()
  })

  it('loss checks targets too (ignoreIndex allowed), generate checks the prompt', async () => {
    const model = build({ numMemoryTokens: 1 })
    const ar = new AutoregressiveWrapper(model)
    const target = ids([[1, 2, 20]])
    rejects(
      () => ar.loss(target as tf.Tensor2D),
      new ConfigError(
        '@xattn/transformer',
        'tokens',
        'AutoregressiveWrapper.loss: tokens must be token ids in [0, 20) (numTokens=20) or -100 (ignoreIndex), got 20 at [0, 2]',
      ),
    )
    const ignored = ids([[1, 2, -100]])
    tf.dispose(ar.loss(ignored as tf.Tensor2D))
    const prompt = ids([
      [1, 2],
      [3, 20],
    ])
    const before = tf.memory().numTensors
    await expect(ar.generate(prompt as tf.Tensor2D, { seqLen: 1, cache: false })).rejects.toThrow(
      new ConfigError(
        '@xattn/transformer',
        'prompt',
        'generate: prompt must be token ids in [0, 20) (numTokens=20), got 20 at [1, 1]',
      ),
    )
    expect(tf.memory().numTensors).toBe(before)
    // Padding beyond promptLens is never fed to the network, so it is not checked.
    const padded = ids([[1, 20]])
    const out = await ar.generate(padded as tf.Tensor2D, { seqLen: 1, cache: false, promptLens: [1] })
    expect(out.shape).toEqual([1, 1])
    tf.dispose([target, ignored, prompt, padded, out])
    model.dispose()
  })
})

describeEachBackend('DynamicPositionBias with one key position (j = 1)', () => {
  /** The MLP of distance d, by hand (linear → SiLU per hidden layer, then the head projection). */
  function mlpOracle(dyn: DynamicPositionBias, distance: number): number[] {
    const params = dyn.stateDict()
    const w = (n: string) => params.get(n) as tf.Tensor
    return tf.tidy(() => {
      let hidden: tf.Tensor = tf.tensor2d([[distance]])
      for (const layer of [0, 1]) {
        const z = tf.add(tf.matMul(hidden, w(`mlp.${layer}.0.weight`), false, true), w(`mlp.${layer}.0.bias`))
        hidden = tf.mul(z, tf.sigmoid(z))
      }
      return Array.from(tf.add(tf.matMul(hidden, w('mlp.2.weight'), false, true), w('mlp.2.bias')).dataSync())
    })
  }

  it('bias(i, j) for j = 1 … 4 is the MLP of query − key at every entry', () => {
    const dyn = new DynamicPositionBias({ dim: 4, heads: 2, rng: new SeededRandom(3) })
    for (let j = 1; j <= 4; j++) {
      for (let i = 1; i <= j; i++) {
        const got = expectNoLeaks(() => dyn.bias(i, j), { returns: 1 })
        expect(got.shape).toEqual([2, i, j])
        // Entry [head, q, k] is the MLP of distance (j - i + q) - k.
        const want = new Float32Array(2 * i * j)
        for (let q = 0; q < i; q++) {
          for (let k = 0; k < j; k++) {
            const perHead = mlpOracle(dyn, j - i + q - k)
            for (let head = 0; head < 2; head++) want[head * i * j + q * j + k] = perHead[head] as number
          }
        }
        // float32: the same few multiply-adds in another order, O(1) values.
        expectClose(got, want, { atol: 1e-6, label: `bias(${i}, ${j})` })
        got.dispose()
      }
    }
    dyn.dispose()
  })

  it('a 1-token forward works, and decoding from a 1-token prompt equals the full forward', () => {
    const model = new TransformerWrapper({
      numTokens: 20,
      maxSeqLen: 8,
      attnLayers: new Decoder({ dim: 16, depth: 2, heads: 4, dynamicPosBias: true, attn: { dimHead: 8 } }),
    }).eval()
    const tokens = tf.tensor2d([3, 7, 1, 12, 5, 9], [2, 3], 'int32')
    const full = model.forward(tokens)
    const first = tf.slice(tokens, [0, 0], [2, 1])
    const single = expectNoLeaks(() => model.forward(first), { returns: 1 })
    expect(single.shape).toEqual([2, 1, 20])
    const steps: tf.Tensor[] = []
    let cache: AttentionCache[] | null = null
    for (let t = 0; t < 3; t++) {
      const chunk = tf.slice(tokens, [0, t], [2, 1])
      const step: ReturnType<TransformerWrapper['forwardWithCache']> = model.forwardWithCache(chunk, {
        cache,
      })
      for (const entry of cache ?? []) tf.dispose([entry.k, entry.v])
      cache = step.cache
      step.embeddings.dispose()
      steps.push(step.logits as tf.Tensor)
      chunk.dispose()
    }
    for (const entry of cache ?? []) tf.dispose([entry.k, entry.v])
    const incremental = tf.concat(steps, 1)
    // float32: cached and full attention sum the same terms in another order (O(1) logits).
    expectClose(incremental, full, { atol: 2e-5 })
    expectClose(single, tf.slice(full, [0, 0, 0], [2, 1, 20]), { atol: 2e-5 })
    tf.dispose([tokens, full, first, single, incremental, ...steps])
    model.dispose()
  })
})

describe('a KV cache on a non-causal stack', () => {
  const encoder = (depth: number) =>
    new TransformerWrapper({
      numTokens: 20,
      maxSeqLen: 8,
      attnLayers: new Encoder({ dim: 16, depth, heads: 4, attn: { dimHead: 8 } }),
    }).eval()

  it("is refused by name ('causal') from two self-attention layers on; one layer is cacheable", async () => {
    const deep = encoder(2)
    const shallow = encoder(1)
    expect(deep.cacheUnsupportedReason()).toBe('causal')
    expect(deep.attnLayers.cacheUnsupportedReason()).toBe('causal')
    expect(shallow.cacheUnsupportedReason()).toBeNull()
    const tokens = tf.tensor2d([1, 2], [1, 2], 'int32')
    const first = deep.forwardWithCache(tokens)
    const next = tf.tensor2d([3], [1, 1], 'int32')
    rejects(
      () => deep.forwardWithCache(next, { cache: first.cache }),
      new ConfigError(
        '@xattn/transformer',
        'causal',
        "TransformerWrapper: this model cannot decode with a KV cache because of 'causal' (see cacheUnsupportedReason)",
      ),
    )
    const ar = new AutoregressiveWrapper(deep)
    await expect(ar.generate(tokens as tf.Tensor2D, { seqLen: 2, cache: true })).rejects.toThrow(
      "generate: cannot decode with a KV cache because of 'causal'; pass cache: false",
    )
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    const out = await ar.generate(tokens as tf.Tensor2D, { seqLen: 2 })
    expect(out.shape).toEqual([1, 2])
    expect(String(warn.mock.calls[0]?.[0])).toMatch(/KV cache disabled because of 'causal'/)
    warn.mockRestore()
    tf.dispose([tokens, next, out, first.embeddings, first.logits as tf.Tensor])
    tf.dispose(first.cache.flatMap((e) => [e.k, e.v]))
    deep.dispose()
    shallow.dispose()
  })
})
