// The manual as a reader meets it: a README short enough to read through, that starts with the
// repository's two commands, and links that lead somewhere, anchors included.
import t from 'tap'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const read = (file: string): string => readFileSync(join(root, file), 'utf8')

/** Every Markdown file of the manual, relative to the repository. */
const manual = ['README.md', 'CHANGELOG.md', 'example-app/README.md', 'verify/README.md',
  ...readdirSync(join(root, 'docs')).filter(file => file.endsWith('.md')).map(file => `docs/${file}`)]

/** The text outside code blocks, where a `#` starts a heading and `](` a link. */
const prose = (text: string): string => text.replace(/^```[\s\S]*?^```/gm, '')

/** The anchors GitHub gives a file's headings: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchors (text: string): Set<string> {
  const seen = new Map<string, number>()
  const found = new Set<string>()
  for (const [, heading] of prose(text).matchAll(/^#{1,6}\s+(.+)$/gm)) {
    const slug = heading!.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/ /g, '-')
    const repeat = seen.get(slug) ?? 0
    seen.set(slug, repeat + 1)
    found.add(repeat === 0 ? slug : `${slug}-${repeat}`)
  }
  return found
}

t.test('the README is at most 300 lines and starts with the two commands', async t => {
  const readme = read('README.md')
  const lines = readme.split('\n').length
  t.ok(lines <= 300, `${lines} lines`)
  t.match(readme, /^# fastify-graceful-termination\n\n```sh\nnpm install && npm start .*\nnpm test .*\n```\n/)
})

t.test('every relative link of the manual resolves, anchors included', async t => {
  for (const file of manual) {
    t.ok(existsSync(join(root, file)), `${file} exists`)
    for (const [, target] of prose(read(file)).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue
      const [path, anchor] = target!.split('#') as [string, string | undefined]
      const resolved = path === '' ? file : relative(root, join(root, dirname(file), path))
      t.ok(existsSync(join(root, resolved)), `${file}: ${target} leads to ${resolved}`)
      if (anchor !== undefined && resolved.endsWith('.md') && existsSync(join(root, resolved))) {
        t.ok(anchors(read(resolved)).has(anchor), `${file}: ${target} has its anchor`)
      }
    }
  }
})
