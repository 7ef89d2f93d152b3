import * as tf from '@tensorflow/tfjs-core'
import { ConfigError, SeededRandom } from '@xattn/core'
import { describeEachBackend, expectClose, expectNoLeaks, randomTensor } from '@xattn/test-utils'
import { describe, expect, it } from 'vitest'
import {
  type AttentionLayersResult,
  alibiSlopes,
  applyRotary,
  createFromXTransformers,
  Decoder,
  DynamicPositionBias,
  Encoder,
  FeedForward,
  RelativePositionBias,
  RotaryEmbedding,
  shiftTokens,
  TransformerWrapper,
} from '../src/index.js'

// Options that the x-transformers fixtures do not cover, each against an oracle that does not
// come from the code under test (hand-derived values, or an identity the option must satisfy).

function tokens(b: number, n: number): tf.Tensor2D {
  return tf.tensor2d(
    Int32Array.from({ length: b * n }, (_, i) => (i * 5 + 3) % 32),
    [b, n],
    'int32',
  )
}

describe('positions', () => {
  it('alibiSlopes follows the geometric sequence, interleaving for non powers of two', () => {
    expect(alibiSlopes(4)).toEqual([0.25, 0.0625, 0.015625, 0.00390625])
    expect(alibiSlopes(6)).toEqual([0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125])
  })

  it('T5 buckets: exact near, logarithmic far, direction split when bidirectional', () => {
    const bias = new RelativePositionBias({ heads: 1, causal: false, scale: 1, rng: new SeededRandom(0) })
    // Queries and keys 0…400; row 200 is the query at position 200: relative position = key - 200.
    const buckets = bias.buckets(401, 401)
    const at = (rel: number) => buckets[200 * 401 + 200 + rel]
    // Hand-derived (num_buckets 32 → 16 per direction, max_exact 8, max_distance 128):
    // rel 0 → 0; rel -1 (key before query) → 1; rel +1 → 16 + 1; rel +20 → 16 + 8 + ⌊log(20/8)/log(16)·8⌋ = 26;
    // rel -200 → min(8 + ⌊log(25)/log(16)·8⌋, 15) = 15.
    expect(at(0)).toBe(0)
    expect(at(-1)).toBe(1)
    expect(at(1)).toBe(17)
    expect(at(20)).toBe(26)
    expect(at(-200)).toBe(15)
    bias.dispose()
  })

  it('T5 buckets with custom numBuckets / maxDistance (causal)', () => {
    const bias = new RelativePositionBias({
      heads: 1,
      causal: true,
      scale: 1,
      numBuckets: 8,
      maxDistance: 16,
      rng: new SeededRandom(0),
    })
    // One query at position 20 against keys 0…20: distance n = 20 - key; max_exact 4;
    // n ≥ 4 → 4 + ⌊log(n/4) / log(4) · 4⌋, capped at 7.
    const buckets = bias.buckets(1, 21)
    expect([20, 17, 16, 12, 0].map((k) => buckets[k])).toEqual([0, 3, 4, 6, 7])
    bias.dispose()
  })

  it('rotary base rescaling and the xpos scale base follow their formulas', () => {
    const dim = 8
    const rescaled = new RotaryEmbedding({ dim, baseRescaleFactor: 2, useXpos: true, scaleBase: 4 })
    const invFreq = rescaled.stateDict().get('inv_freq') as tf.Tensor
    const base = 10000 * 2 ** (dim / (dim - 2))
    expectClose(
      invFreq,
      [0, 2, 4, 6].map((i) => 1 / base ** (i / dim)),
      { atol: 0, rtol: 1e-6 },
    )
    const { freqs, scale } = rescaled.apply(5)
    const xposScale = [0, 2, 4, 6].map((i) => (i + 0.4 * dim) / (1.4 * dim))
    const expected: number[] = []
    for (let t = 0; t < 5; t++)
      for (const s of xposScale) expected.push(s ** ((t - 2) / 4), s ** ((t - 2) / 4))
    expectClose(scale as tf.Tensor, expected, { atol: 0, rtol: 1e-5 })
    tf.dispose([freqs, scale as tf.Tensor])
    rescaled.dispose()
  })

  it('dynamic position bias with log distance and a 3-layer MLP', () => {
    const dyn = new DynamicPositionBias({
      dim: 4,
      heads: 2,
      depth: 3,
      logDistance: true,
      rng: new SeededRandom(1),
    })
    const names = [...dyn.stateDict().keys()].sort()
    expect(names).toEqual([
      'mlp.0.0.bias',
      'mlp.0.0.weight',
      'mlp.1.0.bias',
      'mlp.1.0.weight',
      'mlp.2.0.bias',
      'mlp.2.0.weight',
      'mlp.3.bias',
      'mlp.3.weight',
    ])
    const got = dyn.bias(3, 3)
    // Oracle for one entry: query 2, key 0 → distance 2 → input sign(2)·log(3).
    const params = dyn.stateDict()
    const w = (n: string) => params.get(n) as tf.Tensor
    const silu = (t: tf.Tensor) => tf.mul(t, tf.sigmoid(t))
    const want = tf.tidy(() => {
      let hidden: tf.Tensor = tf.tensor2d([[Math.log(3)]])
      for (const layer of [0, 1, 2]) {
        hidden = silu(
          tf.add(tf.matMul(hidden, w(`mlp.${layer}.0.weight`), false, true), w(`mlp.${layer}.0.bias`)),
        )
      }
      return tf.add(tf.matMul(hidden, w('mlp.3.weight'), false, true), w('mlp.3.bias'))
    })
    const entry = tf.tidy(() => tf.reshape(tf.slice(got, [0, 2, 0], [2, 1, 1]), [1, 2]))
    expectClose(entry, want, { atol: 1e-6 })
    tf.dispose([got, want, entry])
    dyn.dispose()
  })

  it('rotary rotates interleaved pairs of the first rotary features only', () => {
    const rotary = new RotaryEmbedding({ dim: 2, interpolationFactor: 2 })
    const freqs = rotary.apply(3)
    // inv_freq = [1]; interpolation 2 → angle = position / 2.
    const t = tf.tensor4d([1, 2, 7, 3, 4, 8, 5, 6, 9], [1, 1, 3, 3])
    const out = applyRotary(t, freqs, false)
    const expected: number[] = []
    const rows: [number, number, number][] = [
      [1, 2, 7],
      [3, 4, 8],
      [5, 6, 9],
    ]
    rows.forEach(([a, b, c], p) => {
      const angle = p / 2
      expected.push(a * Math.cos(angle) - b * Math.sin(angle), b * Math.cos(angle) + a * Math.sin(angle), c)
    })
    expectClose(out, expected, { atol: 1e-6 })
    for (const x of [t, out, freqs.freqs]) x.dispose()
    rotary.dispose()
  })
})

describe('token shift', () => {
  it('moves feature chunks along the sequence by their shift, zero-filling', () => {
    const x = tf.tensor3d(
      [
        [
          [1, 2, 3, 4, 5, 6, 7],
          [11, 12, 13, 14, 15, 16, 17],
          [21, 22, 23, 24, 25, 26, 27],
        ],
      ],
      [1, 3, 7],
    )
    const out = shiftTokens(x, [-1, 0, 1], null)
    // chunks of ⌊7/3⌋ = 2: the first moves one position earlier, the last one later; feature 7 stays.
    expect(Array.from(out.dataSync())).toEqual([
      11, 12, 3, 4, 0, 0, 7, 21, 22, 13, 14, 5, 6, 17, 0, 0, 23, 24, 15, 16, 27,
    ])
    for (const t of [x, out]) t.dispose()
  })
})

describeEachBackend('stack options', () => {
  it('forward returns exactly the tensors it reports and leaks nothing else', () => {
    const stack = new Decoder({
      dim: 8,
      depth: 2,
      heads: 2,
      attn: { dimHead: 4, numMemKv: 1 },
      crossAttend: true,
      residualAttn: true,
      relPosBias: true,
      macaron: true,
      shiftTokens: 1,
    })
    const x = randomTensor([1, 4, 8], 1)
    const context = randomTensor([1, 3, 8], 2)
    // Every returned tensor is new (none is the caller's x), and nothing else is left behind.
    const before = tf.memory().numTensors
    const r = stack.forward(x, { context, returnIntermediates: true })
    const returned = [
      r.out,
      ...r.hiddens,
      ...r.attention,
      ...r.cache.flatMap((c) => [c.k, c.v, ...(c.tokenShift ?? [])]),
    ]
    expect(tf.memory().numTensors - before).toBe(new Set(returned.map((t) => t.id)).size)
    expect(r.hiddens.length).toBe(stack.layerTypes.length + 1)
    expect(r.attention.length).toBe(4)
    tf.dispose([...new Set(returned)])
    expect(tf.memory().numTensors).toBe(before)
    for (const t of [x, context]) t.dispose()
    stack.dispose()
  })

  it('zeroInitBranchOutput + scaleResidualConstant: every layer multiplies the stream by the constant', () => {
    const stack = new Encoder({
      dim: 8,
      depth: 2,
      heads: 2,
      attn: { dimHead: 4 },
      zeroInitBranchOutput: true,
      scaleResidualConstant: 0.5,
    })
    const x = randomTensor([1, 4, 8], 1)
    const r = stack.forward(x, { returnIntermediates: true })
    expectClose(r.hiddens[4] as tf.Tensor, tf.mul(x, 0.0625), { atol: 1e-7 })
    for (const t of [x, r.out, ...r.hiddens, ...r.attention, ...r.cache.flatMap((c) => [c.k, c.v])])
      t.dispose()
    stack.dispose()
  })

  it('useLayerscale with layerscaleInitValue 0 leaves the stream unchanged; softclampOutput clamps before the final norm', () => {
    const stack = new Decoder({
      dim: 8,
      depth: 1,
      heads: 2,
      attn: { dimHead: 4 },
      useLayerscale: true,
      softclampOutput: true,
      softclampOutputValue: 0.1,
    })
    const x = randomTensor([1, 4, 8], 2)
    const r = stack.forward(x, { returnIntermediates: true })
    expectClose(r.hiddens[2] as tf.Tensor, x, { atol: 0 })
    const clamped = tf.mul(tf.tanh(tf.div(x, 0.1)), 0.1)
    const { mean, variance } = tf.moments(clamped, -1, true)
    const normed = tf.div(tf.sub(clamped, mean), tf.sqrt(tf.add(variance, 1e-5)))
    expectClose(r.out, normed, { atol: 1e-5 })
    for (const t of [x, r.out, ...r.hiddens, ...r.cache.flatMap((c) => [c.k, c.v])]) t.dispose()
    stack.dispose()
  })

  it('resiDual: post-norm layers plus the normalised, scaled outer residual', () => {
    const stack = new Encoder({
      dim: 8,
      depth: 2,
      heads: 2,
      attn: { dimHead: 4 },
      zeroInitBranchOutput: true,
      resiDual: true,
      resiDualScale: 0.5,
    })
    expect([...stack.stateDict().keys()].filter((k) => k.endsWith('gamma')).sort()).toEqual([
      'final_norm.gamma',
      'layers.0.0.2.gamma',
      'layers.1.0.2.gamma',
      'layers.2.0.2.gamma',
      'layers.3.0.2.gamma',
    ])
    const x = randomTensor([1, 4, 8], 6)
    const r = stack.forward(x)
    // Zero branches: the inner stream is LayerNorm applied 4 times, the outer one stays 0.5·x.
    const ln = (t: tf.Tensor) => {
      const { mean, variance } = tf.moments(t, -1, true)
      return tf.div(tf.sub(t, mean), tf.sqrt(tf.add(variance, 1e-5)))
    }
    const want = tf.tidy(() => tf.add(ln(ln(ln(ln(x)))), ln(tf.mul(x, 0.5))))
    expectClose(r.out, want, { atol: 1e-5 })
    expect(() => new Encoder({ dim: 8, depth: 1, resiDual: true, sandwichNorm: true })).toThrow(/resiDual/)
    tf.dispose([x, want, r.out, ...r.cache.flatMap((c) => [c.k, c.v])])
    stack.dispose()
  })

  it('onlyCross builds cross-attention + feedforward blocks that read the context', () => {
    const stack = new Decoder({
      dim: 8,
      depth: 2,
      heads: 2,
      attn: { dimHead: 4 },
      crossAttend: true,
      onlyCross: true,
      crossResidualAttn: true,
    })
    expect(stack.layerTypes).toEqual(['c', 'f', 'c', 'f'])
    const x = randomTensor([1, 3, 8], 3)
    const c1 = randomTensor([1, 5, 8], 4)
    const c2 = randomTensor([1, 5, 8], 5)
    const a = stack.forward(x, { context: c1 })
    const b = stack.forward(x, { context: c2 })
    expect(Math.max(...Array.from(tf.abs(tf.sub(a.out, b.out)).dataSync()))).toBeGreaterThan(1e-3)
    for (const t of [
      x,
      c1,
      c2,
      a.out,
      b.out,
      ...a.cache.flatMap((c) => [c.k, c.v]),
      ...b.cache.flatMap((c) => [c.k, c.v]),
    ])
      t.dispose()
    stack.dispose()
  })

  it('FeedForward: gluMultBias scales the gated activation (no biases: the output scales)', () => {
    const ff = new FeedForward({ dim: 8, mult: 2, glu: true, gluMultBias: true, swish: true, noBias: true })
    const x = randomTensor([1, 3, 8], 6)
    const one = ff.apply(x)
    const multBias = ff.stateDict().get('ff.0.mult_bias') as tf.Variable
    tf.tidy(() => multBias.assign(tf.fill(multBias.shape, 2)))
    const two = ff.apply(x)
    expectClose(two, tf.mul(one, 2), { atol: 1e-5 })
    expect(ff.stateDict().get('ff.2.weight')?.shape).toEqual([8, 16])
    for (const t of [x, one, two]) t.dispose()
    ff.dispose()
  })
})

describeEachBackend('TransformerWrapper', () => {
  const decoder = () =>
    new Decoder({ dim: 8, depth: 1, heads: 2, attn: { dimHead: 4, dropout: 0.3 }, ff: { dropout: 0.3 } })

  it('forward leaves no tensors behind and is deterministic in eval mode; dropout only in training', () => {
    const model = new TransformerWrapper({
      numTokens: 32,
      maxSeqLen: 8,
      attnLayers: decoder(),
      embDropout: 0.3,
    })
    const x = tokens(2, 5)
    model.eval()
    const a = expectNoLeaks(() => model.forward(x), { returns: 1 })
    const b = model.forward(x)
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()))
    model.train()
    const c = model.forward(x)
    expect(Math.max(...Array.from(tf.abs(tf.sub(c, a)).dataSync()))).toBeGreaterThan(1e-4)
    for (const t of [x, a, b, c]) t.dispose()
    model.dispose()
  })

  it('embFracGradient scales the embedding gradients and nothing else', () => {
    const full = new TransformerWrapper({ numTokens: 32, maxSeqLen: 8, attnLayers: decoder() }).eval()
    const frac = new TransformerWrapper({
      numTokens: 32,
      maxSeqLen: 8,
      attnLayers: decoder(),
      embFracGradient: 0.25,
    }).eval()
    frac.loadStateDict(full.stateDict())
    const x = tokens(2, 5)
    const gradsOf = (m: TransformerWrapper) => {
      const named = [...m.namedParameters()]
      const { value, grads } = tf.variableGrads(
        () => tf.mean(tf.logSumExp(m.forward(x), -1)) as tf.Scalar,
        named.map(([, v]) => v),
      )
      value.dispose()
      return new Map(named.map(([name, v]) => [name, grads[v.name] as tf.Tensor]))
    }
    const g1 = gradsOf(full)
    const g2 = gradsOf(frac)
    for (const [name, g] of g1) {
      const scale = name === 'token_emb.emb.weight' || name === 'pos_emb.emb.weight' ? 0.25 : 1
      // float32: the forward value x·f + x·(1 − f) may differ from x by an ulp.
      expectClose(g2.get(name) as tf.Tensor, tf.mul(g, scale), { atol: 1e-5, label: name })
    }
    tf.dispose([x, ...g1.values(), ...g2.values()])
    full.dispose()
    frac.dispose()
  })

  it('sigsoftmaxLogits adds log σ(logits)', () => {
    const plain = new TransformerWrapper({ numTokens: 32, maxSeqLen: 8, attnLayers: decoder() }).eval()
    const sig = new TransformerWrapper({
      numTokens: 32,
      maxSeqLen: 8,
      attnLayers: decoder(),
      sigsoftmaxLogits: true,
    }).eval()
    sig.loadStateDict(plain.stateDict())
    const x = tokens(1, 4)
    const a = plain.forward(x)
    const b = sig.forward(x)
    const want = tf.add(a, tf.log(tf.sigmoid(a)))
    expectClose(b, want, { atol: 1e-5 })
    tf.dispose([x, a, b, want])
    plain.dispose()
    sig.dispose()
  })

  it('logitsDim and returnOnlyEmbed shape the output', () => {
    const m1 = new TransformerWrapper({ numTokens: 32, maxSeqLen: 8, attnLayers: decoder(), logitsDim: 5 })
    const m2 = new TransformerWrapper({
      numTokens: 32,
      maxSeqLen: 8,
      attnLayers: decoder(),
      returnOnlyEmbed: true,
    })
    const x = tokens(1, 4)
    const a = m1.eval().forward(x)
    const b = m2.eval().forward(x)
    expect(a.shape).toEqual([1, 4, 5])
    expect(b.shape).toEqual([1, 4, 8])
    expect([...m2.stateDict().keys()].some((k) => k.startsWith('to_logits'))).toBe(false)
    for (const t of [x, a, b]) t.dispose()
    m1.dispose()
    m2.dispose()
  })

  it('rejects bad inputs by name before any tensor work', () => {
    const model = new TransformerWrapper({ numTokens: 32, maxSeqLen: 4, attnLayers: decoder() })
    const long = tokens(1, 5)
    const floats = tf.zeros([1, 3])
    const x = tokens(1, 3)
    const intMask = tf.ones([1, 3], 'int32')
    const before = tf.memory().numTensors
    expect(() => model.forward(long)).toThrow(/exceed maxSeqLen=4/)
    expect(() => model.forward(floats)).toThrow(/tokens must be int32/)
    expect(() => model.forward(x, { mask: intMask })).toThrow(/mask must be bool/)
    expect(tf.memory().numTensors).toBe(before)
    for (const t of [long, floats, x, intMask]) t.dispose()
    model.dispose()
  })
})

describe('layer order', () => {
  it('customLayers, sandwichCoef and parRatio follow x-transformers', () => {
    const custom = new Decoder({ dim: 8, heads: 2, customLayers: ['f', 'a', 'f'], attn: { dimHead: 4 } })
    expect(custom.layerTypes).toEqual(['f', 'a', 'f'])
    const sandwich = new Decoder({ dim: 8, depth: 3, heads: 2, sandwichCoef: 1, attn: { dimHead: 4 } })
    expect(sandwich.layerTypes).toEqual(['a', 'a', 'f', 'a', 'f', 'f'])
    // par_depth 12, ratio 4: 3 attention layers in blocks of width (8 + 8 // 3) // 3 = 3, then feedforwards.
    const par = new Decoder({ dim: 8, depth: 6, heads: 2, parRatio: 4, attn: { dimHead: 4 } })
    expect(par.layerTypes.join('')).toBe('affaffafffff')
    expect(() => new Decoder({ dim: 8, depth: 2, sandwichCoef: 1, parRatio: 2 })).toThrow(
      /parRatio|sandwichCoef/,
    )
    for (const m of [custom, sandwich, par]) m.dispose()
  })

  it('customLayers equal to the default order gives the same model', () => {
    const a = new Decoder({ dim: 8, depth: 2, heads: 2, attn: { dimHead: 4 } })
    const b = new Decoder({ dim: 8, heads: 2, customLayers: ['a', 'f', 'a', 'f'], attn: { dimHead: 4 } })
    b.loadStateDict(a.stateDict())
    const x = randomTensor([1, 4, 8], 3)
    const ya = a.forward(x)
    const yb = b.forward(x)
    expect(Array.from(yb.out.dataSync())).toEqual(Array.from(ya.out.dataSync()))
    for (const t of [
      x,
      ya.out,
      yb.out,
      ...ya.cache.flatMap((c) => [c.k, c.v]),
      ...yb.cache.flatMap((c) => [c.k, c.v]),
    ])
      t.dispose()
    a.dispose()
    b.dispose()
  })

  it('weightTieLayers runs one block depth times: the same as an untied stack with copied weights', () => {
    const tied = new Decoder({ dim: 8, depth: 3, heads: 2, attn: { dimHead: 4 }, weightTieLayers: true })
    expect([...tied.stateDict().keys()].some((k) => k.startsWith('layers.2.'))).toBe(false)
    expect(tied.executeOrder).toEqual([0, 1, 0, 1, 0, 1])
    const untied = new Decoder({ dim: 8, depth: 3, heads: 2, attn: { dimHead: 4 } })
    const copied = new Map<string, tf.Tensor>()
    for (const name of untied.stateDict().keys()) {
      const m = /^layers\.(\d+)\.(.*)$/.exec(name)
      const source = m === null ? name : `layers.${Number(m[1]) % 2}.${m[2]}`
      copied.set(name, tied.stateDict().get(source) as tf.Tensor)
    }
    untied.loadStateDict(copied)
    const viaOrder = new Decoder({
      dim: 8,
      depth: 1,
      heads: 2,
      attn: { dimHead: 4 },
      layersExecuteOrder: [0, 1, 0, 1, 0, 1],
    })
    viaOrder.loadStateDict(tied.stateDict())
    const x = randomTensor([1, 4, 8], 3)
    const results = [tied, untied, viaOrder].map((m) => m.forward(x, { returnIntermediates: true }))
    const [a, b, c] = results as [AttentionLayersResult, AttentionLayersResult, AttentionLayersResult]
    expectClose(b.out, a.out, { atol: 1e-6 })
    expectClose(c.out, a.out, { atol: 1e-6 })
    expect(a.hiddens.length).toBe(7)
    expect(a.cache.length).toBe(3)
    for (const r of results)
      tf.dispose([r.out, ...r.hiddens, ...r.attention, ...r.cache.flatMap((e) => [e.k, e.v])])
    x.dispose()
    for (const m of [tied, untied, viaOrder]) m.dispose()
  })

  it('layerDropout skips layers only in training mode', () => {
    // p just below 1: in training every layer is skipped (failure odds ~1e-7 per layer).
    const stack = new Encoder({ dim: 8, depth: 2, heads: 2, attn: { dimHead: 4 }, layerDropout: 0.9999999 })
    const reference = new Encoder({ dim: 8, depth: 2, heads: 2, attn: { dimHead: 4 } })
    reference.loadStateDict(stack.stateDict())
    const x = randomTensor([1, 4, 8], 5)
    const evalOut = stack.eval().forward(x)
    const refOut = reference.eval().forward(x)
    expect(Array.from(evalOut.out.dataSync())).toEqual(Array.from(refOut.out.dataSync()))
    const trainOut = stack.train().forward(x)
    const { mean, variance } = tf.moments(x, -1, true)
    expectClose(trainOut.out, tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), { atol: 1e-5 })
    expect(trainOut.cache.length).toBe(0)
    for (const r of [evalOut, refOut])
      for (const t of [r.out, ...r.cache.flatMap((c) => [c.k, c.v])]) t.dispose()
    for (const t of [x, trainOut.out, mean, variance]) t.dispose()
    stack.dispose()
    reference.dispose()
  })

  it('fromXTransformers translates custom_layers, sandwich_coef, par_ratio and layer_dropout', () => {
    const model = createFromXTransformers({
      layers: 'Decoder',
      layers_kwargs: {
        dim: 8,
        heads: 2,
        attn_dim_head: 4,
        custom_layers: ['a', 'f', 'f'],
        layer_dropout: [0, 0.1, 0.2],
        depth: null,
      },
      wrapper: { num_tokens: 10, max_seq_len: 8 },
    })
    expect(model.attnLayers.layerTypes).toEqual(['a', 'f', 'f'])
    expect(model.attnLayers.layerDropouts).toEqual([0, 0.1, 0.2])
    model.dispose()
  })
})

describe('rotary dimension', () => {
  it('defaults to max(dimHead / 2, 32); an explicit rotaryEmbDim is taken as is; the import keeps the floor of 32', () => {
    const wide = new Decoder({ dim: 8, depth: 1, heads: 2, rotaryPosEmb: true, attn: { dimHead: 128 } })
    expect(wide.stateDict().get('rotary_pos_emb.inv_freq')?.shape).toEqual([32])
    const small = new Decoder({
      dim: 8,
      depth: 1,
      heads: 2,
      rotaryPosEmb: true,
      rotaryEmbDim: 8,
      attn: { dimHead: 16 },
    })
    expect(small.stateDict().get('rotary_pos_emb.inv_freq')?.shape).toEqual([4])
    expect(
      () => new Decoder({ dim: 8, depth: 1, heads: 2, rotaryPosEmb: true, attn: { dimHead: 16 } }),
    ).toThrow(/pass rotaryEmbDim/)
    const imported = createFromXTransformers({
      layers: 'Decoder',
      layers_kwargs: {
        dim: 8,
        depth: 1,
        heads: 2,
        attn_dim_head: 64,
        rotary_pos_emb: true,
        rotary_emb_dim: 16,
      },
      wrapper: { num_tokens: 10, max_seq_len: 8 },
    })
    expect(imported.stateDict().get('attn_layers.rotary_pos_emb.inv_freq')?.shape).toEqual([16])
    for (const m of [wide, small, imported]) m.dispose()
  })
})

describe('stack configuration errors', () => {
  it('names the conflicting options', () => {
    expect(() => new Encoder({ dim: 8, depth: 1, useRmsnorm: true, useScalenorm: true })).toThrow(ConfigError)
    expect(() => new Encoder({ dim: 8, depth: 1, rotaryXpos: true, attn: { dimHead: 32 } })).toThrow(
      /rotaryXpos/,
    )
    expect(() => new Encoder({ dim: 8, depth: 1, preNorm: false, sandwichNorm: true })).toThrow(
      /sandwichNorm/,
    )
    expect(() => new Encoder({ dim: 8, depth: 1, alibiPosBias: true, relPosBias: true })).toThrow(
      /relPosBias|alibiPosBias/,
    )
    expect(() => new Decoder({ dim: 8, depth: 1, heads: 2, alibiPosBias: true, alibiNumHeads: 3 })).toThrow(
      /alibiNumHeads/,
    )
    expect(() => new Encoder({ dim: 8, depth: 1, causal: true } as never)).toThrow(/causal/)
  })
})
