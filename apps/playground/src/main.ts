import { DEFAULT_CORPUS } from './corpus.js'
import { drawHeatmap } from './heatmap.js'
import { LossChart } from './lossChart.js'
import {
  activateBackend,
  type BackendChoice,
  DEFAULT_SETTINGS,
  type ModelSettings,
  PlaygroundSession,
  type Positions,
} from './session.js'

function el<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id)
  if (found === null) throw new Error(`playground: missing #${id}`)
  return found as T
}

const ui = {
  backend: el<HTMLSelectElement>('backend'),
  attention: el<HTMLSelectElement>('attention'),
  kvHeads: el<HTMLSelectElement>('kvHeads'),
  memKv: el<HTMLInputElement>('memKv'),
  positions: el<HTMLSelectElement>('positions'),
  build: el<HTMLButtonElement>('build'),
  drop: el<HTMLDivElement>('drop'),
  files: el<HTMLInputElement>('files'),
  model: el<HTMLDivElement>('model'),
  corpus: el<HTMLTextAreaElement>('corpus'),
  steps: el<HTMLInputElement>('steps'),
  batch: el<HTMLInputElement>('batch'),
  train: el<HTMLButtonElement>('train'),
  stop: el<HTMLButtonElement>('stop'),
  stats: el<HTMLDivElement>('stats'),
  prompt: el<HTMLInputElement>('prompt'),
  count: el<HTMLInputElement>('count'),
  generate: el<HTMLButtonElement>('generate'),
  output: el<HTMLDivElement>('output'),
  layer: el<HTMLSelectElement>('layer'),
  head: el<HTMLSelectElement>('head'),
  show: el<HTMLButtonElement>('show'),
  heatmap: el<HTMLCanvasElement>('heatmap'),
  status: el<HTMLDivElement>('status'),
}

const chart = new LossChart(el<HTMLCanvasElement>('loss'))
let session: PlaygroundSession | null = null
let stopRequested = false
let lastText = ''

function setStatus(text: string): void {
  ui.status.textContent = text
}

function fillSelect(select: HTMLSelectElement, count: number): void {
  select.innerHTML = ''
  for (let i = 0; i < count; i++) select.add(new Option(String(i), String(i)))
}

function adopt(next: PlaygroundSession): void {
  session?.dispose()
  session = next
  chart.clear()
  fillSelect(ui.layer, next.layers)
  fillSelect(ui.head, next.heads)
  ui.model.textContent = next.description
  ui.stats.textContent = 'step 0'
}

/** Runs a UI action, showing failures in the status line instead of losing them. */
async function act(name: string, body: () => Promise<void>): Promise<void> {
  setStatus(`${name}…`)
  try {
    await body()
  } catch (error) {
    setStatus(`${name} failed: ${(error as Error).message}`)
    console.error(error)
  }
}

function settingsFromUi(): ModelSettings {
  return {
    ...DEFAULT_SETTINGS,
    attention: ui.attention.value as ModelSettings['attention'],
    kvHeads: Number(ui.kvHeads.value),
    memKv: Math.max(0, Math.floor(Number(ui.memKv.value))),
    positions: ui.positions.value as Positions,
  }
}

async function buildModel(): Promise<void> {
  await act('building', async () => {
    const backend = await activateBackend(ui.backend.value as BackendChoice)
    adopt(PlaygroundSession.build(settingsFromUi()))
    setStatus(`model built on ${backend}`)
  })
}

async function trainModel(): Promise<void> {
  await act('training', async () => {
    if (session === null) await buildModel()
    const current = session
    if (current === null) return
    stopRequested = false
    const steps = Math.max(1, Math.floor(Number(ui.steps.value)))
    const batch = Math.max(1, Math.floor(Number(ui.batch.value)))
    await current.train(ui.corpus.value, steps, batch, (report) => {
      chart.push(report.loss)
      ui.stats.textContent = `step ${report.step}  loss ${report.loss.toFixed(3)}  ${Math.round(report.tokensPerSecond)} tokens/s`
      return stopRequested ? false : undefined
    })
    setStatus(`trained to step ${current.steps}`)
  })
}

async function generate(): Promise<void> {
  await act('generating', async () => {
    if (session === null) await buildModel()
    const current = session
    if (current === null) return
    const count = Math.max(1, Math.floor(Number(ui.count.value)))
    const { text, tokensPerSecond } = await current.generate(ui.prompt.value, count)
    lastText = ui.prompt.value + text
    ui.output.textContent = `${ui.prompt.value}[${text}]  (${Math.round(tokensPerSecond)} tokens/s with the KV cache)`
    await showAttention()
    setStatus('generated')
  })
}

async function showAttention(): Promise<void> {
  if (session === null) return
  const text = (lastText || ui.prompt.value).slice(-48)
  const map = await session.attentionMap(text, Number(ui.layer.value || 0), Number(ui.head.value || 0))
  drawHeatmap(ui.heatmap, map)
  ui.heatmap.dataset.rows = String(map.rows)
  ui.heatmap.dataset.cols = String(map.cols)
  ui.heatmap.dataset.memSlots = String(map.memSlots)
}

async function loadCheckpoint(files: readonly File[]): Promise<void> {
  await act('loading checkpoint', async () => {
    const json = files.find((f) => f.name.endsWith('.json'))
    const weights = files.find((f) => f.name.endsWith('.safetensors') && !f.name.startsWith('buffers'))
    if (json === undefined || weights === undefined) {
      throw new Error('drop the kwargs JSON and model.safetensors together')
    }
    await activateBackend(ui.backend.value as BackendChoice)
    const config = JSON.parse(await json.text()) as unknown
    const bytes = new Uint8Array(await weights.arrayBuffer())
    adopt(await PlaygroundSession.load(config, bytes, ui.attention.value as 'flash' | 'reference'))
    setStatus(`loaded ${weights.name}`)
  })
}

ui.corpus.value = DEFAULT_CORPUS
ui.build.addEventListener('click', () => void buildModel())
ui.train.addEventListener('click', () => void trainModel())
ui.stop.addEventListener('click', () => {
  stopRequested = true
})
ui.generate.addEventListener('click', () => void generate())
ui.show.addEventListener('click', () => void act('drawing', showAttention).then(() => setStatus('drawn')))
ui.files.addEventListener('change', () => void loadCheckpoint(Array.from(ui.files.files ?? [])))
ui.drop.addEventListener('dragover', (event) => {
  event.preventDefault()
  ui.drop.classList.add('over')
})
ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('over'))
ui.drop.addEventListener('drop', (event) => {
  event.preventDefault()
  ui.drop.classList.remove('over')
  void loadCheckpoint(Array.from(event.dataTransfer?.files ?? []))
})
// For the browser test and the console: the loss of every step so far.
;(window as unknown as { xattnPlayground: { losses(): number[] } }).xattnPlayground = {
  losses: () => [...chart.values],
}
setStatus('ready')
