/**
 * The dashboard's script (served as /dashboard/app.js, type-stripped, no
 * bundling): fills each panel with its server-rendered fragment, sends the
 * operator token kept in this tab's sessionStorage as a Bearer token, shows
 * the login form on 401/403 (and leaves no data on screen), refreshes the
 * log every few seconds while the tab is visible, and opens a row's story.
 */
export {}

const TOKEN_KEY = 'witness.operator-token'
const LOG_EVERY_MS = 5_000
const PANELS_EVERY_MS = 30_000
/** A fragment that takes longer is given up, with a message in its panel. */
const ANSWER_WITHIN_MS = 30_000

let currentWindow = document.querySelector<HTMLButtonElement>('[data-window][aria-pressed="true"]')?.dataset.window ?? '24h'

class Locked extends Error {}

const $ = <T extends Element = HTMLElement>(selector: string) => document.querySelector<T>(selector)!
const locked = () => document.body.classList.contains('locked')

function authHeaders(): Record<string, string> {
  const token = sessionStorage.getItem(TOKEN_KEY)
  return token ? { authorization: `Bearer ${token}` } : {}
}

async function messageOf(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { error?: { message?: string } }
    return body.error?.message ?? `HTTP ${res.status}`
  } catch {
    return `HTTP ${res.status}`
  }
}

/** An HTML fragment from witness; 401/403 locks the page. */
async function fragment(path: string, signal: AbortSignal): Promise<string> {
  const res = await fetch(path, { headers: authHeaders(), cache: 'no-store', signal })
  if (res.status === 401 || res.status === 403) {
    const message = await messageOf(res)
    // Aborted meanwhile: another panel's refusal locked the page first, with the same message read whole.
    if (!signal.aborted) lock(message)
    throw new Locked()
  }
  if (!res.ok) throw new Error(await messageOf(res))
  return res.text()
}

/** The latest load of each target: an older answer arriving late (a refresh overtaken by a new filter) is dropped. */
const latest = new WeakMap<HTMLElement, number>()
/** The load in flight for each target, aborted when a newer one starts or the page locks. */
const inFlight = new Map<HTMLElement, AbortController>()

/** Drops what is in flight for `target`: its answer, if it still comes, is not shown. */
function forget(target: HTMLElement): void {
  latest.set(target, (latest.get(target) ?? 0) + 1)
  inFlight.get(target)?.abort()
  inFlight.delete(target)
  target.removeAttribute('aria-busy')
}

async function fill(target: HTMLElement, path: string): Promise<void> {
  forget(target)
  const seq = latest.get(target)!
  const controller = new AbortController()
  inFlight.set(target, controller)
  target.setAttribute('aria-busy', 'true')
  let html: string
  try {
    html = await fragment(path, AbortSignal.any([controller.signal, AbortSignal.timeout(ANSWER_WITHIN_MS)]))
  } catch (error) {
    if (error instanceof Locked || latest.get(target) !== seq) return
    const p = document.createElement('p')
    p.className = 'error'
    p.textContent = (error as Error).name === 'TimeoutError' ? `witness did not answer within ${ANSWER_WITHIN_MS / 1000} s` : (error as Error).message
    html = p.outerHTML
  }
  if (latest.get(target) !== seq) return
  inFlight.delete(target)
  target.innerHTML = html
  target.removeAttribute('aria-busy')
}

/** The non-empty fields of a form as a query string. */
function queryOf(form: HTMLFormElement, skip: string[] = []): string {
  const params = new URLSearchParams()
  for (const [name, value] of new FormData(form)) {
    if (typeof value === 'string' && value.trim() && !skip.includes(name)) params.set(name, value.trim())
  }
  const text = params.toString()
  return text ? `?${text}` : ''
}

/** Where a panel's body loads from, with the window or its filter form. */
function sourceOf(body: HTMLElement): string {
  const src = body.dataset.src!
  if (body.hasAttribute('data-windowed')) return `${src}?window=${encodeURIComponent(currentWindow)}`
  const form = body.dataset.filtered ? document.getElementById(body.dataset.filtered) : null
  return form instanceof HTMLFormElement ? src + queryOf(form, ['live']) : src
}

function load(selector = '[data-src]'): Promise<void[]> {
  if (locked()) return Promise.resolve([])
  return Promise.all([...document.querySelectorAll<HTMLElement>(selector)].map((body) => fill(body, sourceOf(body))))
}

/** A timed refresh: a panel whose last load has not answered yet is left to it, so slow answers do not pile up. */
function refresh(selector: string): void {
  if (locked()) return
  for (const body of document.querySelectorAll<HTMLElement>(selector)) if (!inFlight.has(body)) void fill(body, sourceOf(body))
}

function lock(message: string): void {
  sessionStorage.removeItem(TOKEN_KEY)
  document.body.classList.add('locked')
  for (const body of document.querySelectorAll<HTMLElement>('[data-src], #did-call-answer, #story .body')) {
    forget(body)
    body.replaceChildren()
  }
  const dialog = $<HTMLDialogElement>('#story')
  if (dialog.open) dialog.close()
  $('#login-error').textContent = message
}

function unlock(): void {
  document.body.classList.remove('locked')
  $('#login-error').textContent = ''
}

// A click on the backdrop (outside the dialog's box) closes the story.
$<HTMLDialogElement>('#story').addEventListener('click', (event) => {
  const dialog = event.currentTarget as HTMLDialogElement
  const box = dialog.getBoundingClientRect()
  const outside = event.clientX < box.left || event.clientX > box.right || event.clientY < box.top || event.clientY > box.bottom
  if (event.target === dialog && outside) dialog.close()
})

async function openStory(id: string): Promise<void> {
  const dialog = $<HTMLDialogElement>('#story')
  const body = dialog.querySelector<HTMLElement>('.body')!
  body.replaceChildren()
  if (!dialog.open) dialog.showModal()
  await fill(body, `/dashboard/story/${encodeURIComponent(id)}`)
}

function debounce(fn: () => void, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined
  return () => {
    clearTimeout(timer)
    timer = setTimeout(fn, ms)
  }
}

$<HTMLFormElement>('#login-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const input = $<HTMLInputElement>('#login-token')
  sessionStorage.setItem(TOKEN_KEY, input.value.trim())
  input.value = ''
  unlock()
  void load()
})

document.getElementById('logout')?.addEventListener('click', () => lock('Signed out.'))

for (const button of document.querySelectorAll<HTMLButtonElement>('[data-window]')) {
  button.addEventListener('click', () => {
    currentWindow = button.dataset.window!
    for (const b of document.querySelectorAll('[data-window]')) b.setAttribute('aria-pressed', String(b === button))
    for (const label of document.querySelectorAll('[data-window-label]')) label.textContent = currentWindow
    void load('[data-windowed]')
  })
}

const logFilter = $<HTMLFormElement>('#log-filter')
const reloadLog = debounce(() => void load('#log [data-src]'), 250)
logFilter.addEventListener('input', reloadLog)
logFilter.addEventListener('submit', (event) => {
  event.preventDefault()
  reloadLog()
})

$('#log').addEventListener('click', (event) => {
  const row = (event.target as Element).closest<HTMLElement>('[data-story]')
  if (row) void openStory(row.dataset.story!)
})
$('#log').addEventListener('keydown', (event) => {
  const row = (event.target as Element).closest<HTMLElement>('[data-story]')
  if (row && (event.key === 'Enter' || event.key === ' ')) {
    event.preventDefault()
    void openStory(row.dataset.story!)
  }
})

$<HTMLFormElement>('#did-call-form').addEventListener('submit', (event) => {
  event.preventDefault()
  if (!locked()) void fill($('#did-call-answer'), `/dashboard/did-call${queryOf(event.currentTarget as HTMLFormElement)}`)
})

const visible = () => document.visibilityState === 'visible'
setInterval(() => {
  const live = logFilter.elements.namedItem('live') as HTMLInputElement
  if (visible() && live.checked) refresh('#log [data-src]')
}, LOG_EVERY_MS)
setInterval(() => {
  if (visible()) refresh('[data-windowed], #deadman [data-src]')
}, PANELS_EVERY_MS)

// A token kept from earlier in this tab's session unlocks the page; without one a locked page waits for the login.
if (locked() && sessionStorage.getItem(TOKEN_KEY)) unlock()
void load()
