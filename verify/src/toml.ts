import { readFileSync } from 'node:fs'
import { parse, TomlError } from 'smol-toml'
import { UsageError } from './errors.js'

const KEY = ['cerebrium', 'scaling', 'response_grace_period'] as const

/**
 * Cerebrium's response_grace_period (seconds between SIGTERM and SIGKILL) as milliseconds, read
 * from a cerebrium.toml as the platform reads it; undefined when the file or the key is missing.
 */
export function gracePeriodFromToml (file: string): number | undefined {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new UsageError(`${file} cannot be read: ${(err as Error).message}`)
  }
  let value: unknown
  try {
    // Integers as BigInt keep `90` and `90.0` apart: Cerebrium wants an integer here.
    value = parse(text, { integersAsBigInt: true })
  } catch (err) {
    /* c8 ignore next: smol-toml throws TomlError for every malformed document */
    if (!(err instanceof TomlError)) throw err
    throw new UsageError(`${file} is not valid TOML (line ${err.line}, column ${err.column}): ${err.message.split('\n')[0]}`)
  }
  for (const part of KEY) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
    value = (value as Record<string, unknown>)[part]
  }
  if (value === undefined) return undefined
  if (typeof value !== 'bigint' || value < 1n || value > 2_147_483n) {
    const shown = typeof value === 'number' && Number.isInteger(value) ? value.toFixed(1) : JSON.stringify(value, (_, v: unknown) => typeof v === 'bigint' ? Number(v) : v)
    throw new UsageError(`${file}: ${KEY.join('.')} must be a whole number of seconds from 1 to 2147483, received ${shown}`)
  }
  return Number(value) * 1000
}
