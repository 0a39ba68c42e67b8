/** @jsxImportSource hono/jsx */
/** Suggestions for the agent and provider fields (datalists), loaded behind the token like the data. */
import type { FC } from 'hono/jsx'

export const Names: FC<{ agents: string[]; providers: string[] }> = ({ agents, providers }) => (
  <>
    <datalist id="agent-names">
      {agents.map((a) => (
        <option value={a} />
      ))}
    </datalist>
    <datalist id="provider-names">
      {providers.map((p) => (
        <option value={p} />
      ))}
    </datalist>
  </>
)
