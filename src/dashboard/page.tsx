/** @jsxImportSource hono/jsx */
/**
 * GET /: the dashboard's shell. It holds no data: the panels are filled by
 * the page's script from /dashboard/* fragments, which need the operator
 * token. `locked` (auth configured and no operator token on this request)
 * shows the login form first; the script unlocks the page when the browser
 * session holds a token.
 */
import type { FC } from 'hono/jsx'
import { STATUSES } from '../telemetry/schema.ts'
import { DEFAULT_WINDOW, WINDOW_NAMES } from './input.ts'

export const Page: FC<{ locked: boolean; auth: boolean }> = ({ locked, auth }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <meta name="color-scheme" content="light dark" />
      <title>witness</title>
      <link rel="icon" href="data:," />
      <link rel="stylesheet" href="/dashboard/style.css" />
      <script type="module" src="/dashboard/app.js" />
    </head>
    <body class={locked ? 'locked' : ''} data-auth={auth ? 'token' : 'open'}>
      <header class="top">
        <h1>witness</h1>
        <div class="windows" role="group" aria-label="window">
          {WINDOW_NAMES.map((w) => (
            <button type="button" data-window={w} aria-pressed={String(w === DEFAULT_WINDOW)}>
              {w}
            </button>
          ))}
        </div>
        {auth && (
          <button type="button" id="logout" class="quiet">
            Sign out
          </button>
        )}
      </header>

      <section id="login" class="panel" aria-labelledby="login-title">
        <h2 id="login-title">Sign in</h2>
        {/* No name on the field and no GET: submitted before the page's script has loaded (or without it),
            the form sends no token, and never in a URL (history, a proxy's access log). */}
        <form id="login-form" method="post">
          <label>
            Operator token
            <input type="password" id="login-token" autocomplete="current-password" required />
          </label>
          <button type="submit">Sign in</button>
          <p id="login-error" class="error" role="alert" />
          <p class="muted">The token stays in this browser tab (session storage) and goes with each request as a Bearer token.</p>
        </form>
      </section>

      <main id="dashboard">
        <section id="comparison" class="panel wide-panel">
          <h2>
            Providers <span class="muted">last <span data-window-label>{DEFAULT_WINDOW}</span></span>
          </h2>
          <div class="body" data-src="/dashboard/comparison" data-windowed />
        </section>

        <section id="series" class="panel wide-panel">
          <h2>
            Over time <span class="muted">last <span data-window-label>{DEFAULT_WINDOW}</span></span>
          </h2>
          <div class="body" data-src="/dashboard/series" data-windowed />
        </section>

        <section id="log" class="panel wide-panel">
          <h2>Request log</h2>
          <form id="log-filter" class="filters">
            <label>
              Agent <input name="agent" list="agent-names" autocomplete="off" spellcheck={false} />
            </label>
            <label>
              Provider <input name="provider" list="provider-names" autocomplete="off" spellcheck={false} />
            </label>
            <label>
              Status
              <select name="status">
                <option value="">any</option>
                {STATUSES.map((s) => (
                  <option value={s}>{s}</option>
                ))}
              </select>
            </label>
            <label class="check">
              <input type="checkbox" name="live" checked /> live
            </label>
          </form>
          <div class="body" data-src="/dashboard/log" data-filtered="log-filter" />
        </section>

        <section id="did-call" class="panel">
          <h2>Did agent X call provider Y?</h2>
          <form id="did-call-form" class="filters">
            <label>
              Agent <input name="agent" list="agent-names" required autocomplete="off" spellcheck={false} />
            </label>
            <label>
              Provider <input name="provider" list="provider-names" required autocomplete="off" spellcheck={false} />
            </label>
            <label>
              Since
              <select name="since">
                {['1h', '24h', '7d', '30d'].map((s) => (
                  <option value={s} selected={s === '24h'}>
                    last {s}
                  </option>
                ))}
              </select>
            </label>
            <button type="submit">Ask</button>
          </form>
          <div class="body" id="did-call-answer" aria-live="polite" />
        </section>

        <section id="deadman" class="panel">
          <h2>Deadman switch</h2>
          <div class="body" data-src="/dashboard/deadman" />
        </section>
      </main>

      <dialog id="story" aria-label="request story">
        <form method="dialog">
          <button type="submit" class="quiet close" aria-label="close">
            Close
          </button>
        </form>
        <div class="body" />
      </dialog>
      <div id="names" hidden data-src="/dashboard/names" />
    </body>
  </html>
)
