import { describe, expect, it } from 'vitest'
import { DEFAULTS, HELP, parseArgs, UsageError } from '../src/args.js'

describe('demo arguments', () => {
  it('defaults with no arguments; help on --help', () => {
    expect(parseArgs([])).toEqual(DEFAULTS)
    expect(parseArgs(['--help'])).toBe('help')
    expect(parseArgs(['--steps', '5', '-h'])).toBe('help')
    expect(HELP).toContain('--kv-heads')
    expect(HELP).toContain(`${DEFAULTS.target * 100}%`)
  })

  it('reads --flag value and --flag=value, switches, and a leading --', () => {
    const parsed = parseArgs([
      '--',
      '--task',
      'copy',
      '--steps=120',
      '--kv-heads',
      '1',
      '--attention=reference',
      '--backend',
      'cpu',
      '--lr',
      '0.001',
      '--no-cache',
      '--no-rotary',
      '--dim-head',
      '8',
      '--no-save',
      '--quiet',
      '--target',
      '0.5',
    ])
    expect(parsed).toEqual({
      ...DEFAULTS,
      task: 'copy',
      steps: 120,
      kvHeads: 1,
      attention: 'reference',
      backend: 'cpu',
      lr: 0.001,
      cache: false,
      rotary: false,
      dimHead: 8,
      checkpoint: null,
      quiet: true,
      target: 0.5,
    })
  })

  it('rejects unknown flags, missing and invalid values, naming the flag', () => {
    const bad: [string[], RegExp][] = [
      [['--stepz', '3'], /unknown option '--stepz'/],
      [['--steps'], /--steps needs a value/],
      [['--steps', '--quiet'], /--steps needs a value/],
      [['--steps', '2.5'], /--steps needs an integer/],
      [['--batch', '0'], /--batch must be ≥ 1/],
      [['--lr', 'fast'], /--lr needs a number/],
      [['--target', '1.5'], /--target must be in \[0, 1\]/],
      [['--task', 'sort'], /--task must be one of reverse, copy, mixed/],
      [['--quiet=yes'], /--quiet takes no value/],
      [['--heads', '4', '--kv-heads', '3'], /--kv-heads \(3\) must divide --heads \(4\)/],
      [['--dim-head', '16'], /--dim-head must be even and ≥ 32 with rotary/],
      [['--no-save', '--resume'], /--resume needs a checkpoint/],
    ]
    for (const [argv, message] of bad) {
      expect(() => parseArgs(argv), argv.join(' ')).toThrow(UsageError)
      expect(() => parseArgs(argv), argv.join(' ')).toThrow(message)
    }
  })
})

describe('progress bar', () => {
  it('redraws in place on a TTY; prints every tenth plus the final state otherwise', async () => {
    const { ProgressBar } = await import('../src/progress.js')
    const tty: string[] = []
    const bar = new ProgressBar({ isTTY: true, write: (s: string) => tty.push(s) > 0 }, 10)
    bar.update(1, { loss: 2, tokensPerSecond: 100, elapsedMs: 1000 })
    bar.update(2, { loss: 1.5, tokensPerSecond: 100, elapsedMs: 2000 })
    bar.finish()
    expect(tty[0]?.startsWith(`\r${String.fromCharCode(27)}[2K[`)).toBe(true)
    expect(tty[0]).toMatch(/\[█+░+\] step {2}1\/10 {2}loss 2\.0000 {2}100 tok\/s/)
    expect(tty.at(-1)).toBe('\n')
    const plain: string[] = []
    const log = new ProgressBar({ isTTY: false, write: (s: string) => plain.push(s) > 0 }, 100)
    for (let step = 1; step <= 37; step++)
      log.update(step, { loss: 1, tokensPerSecond: 10, elapsedMs: step * 10 })
    log.finish()
    expect(plain.map((line) => line.match(/step +(\d+)/)?.[1])).toEqual(['1', '10', '20', '30', '37'])
    expect(plain.join('')).not.toContain('\r')
  })
})
