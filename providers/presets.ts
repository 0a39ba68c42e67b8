/**
 * Presets for common providers, so a config entry needs no base_url.
 * A provider entry picks one with `preset:`, or by being named like one.
 * The README's preset table is generated from this list (see test/readme.test.ts).
 */
import type { Wire } from './types.ts'

export interface Preset {
  /** Wire format the provider speaks. */
  type: Wire
  /** Base URL; `/chat/completions` or `/messages` is appended. Empty: the config must give one. */
  baseUrl: string
  /** Environment variable holding the API key, if the provider needs one. */
  apiKeyEnv?: string
  /** How the key is sent (documentation only; the adapter decides). */
  authHeader: string
  note: string
  /** The provider refuses a model's reasoning in the history's assistant turns (send_reasoning's default). */
  refusesReasoning?: true
}

export const PRESETS = {
  openrouter: {
    type: 'openai',
    baseUrl: 'https://openrouter.ai/api/v1',
    apiKeyEnv: 'OPENROUTER_API_KEY',
    authHeader: 'Authorization: Bearer',
    note: 'reports the model and upstream that served; usage.cost when asked',
  },
  kimi: {
    type: 'openai',
    baseUrl: 'https://api.moonshot.ai/v1',
    apiKeyEnv: 'KIMI_API_KEY',
    authHeader: 'Authorization: Bearer',
    note: 'Moonshot AI (Kimi)',
  },
  groq: {
    type: 'openai',
    baseUrl: 'https://api.groq.com/openai/v1',
    apiKeyEnv: 'GROQ_API_KEY',
    authHeader: 'Authorization: Bearer',
    note: 'refuses reasoning sent back (send_reasoning: false)',
    refusesReasoning: true,
  },
  gemini: {
    type: 'openai',
    baseUrl: 'https://generativelanguage.googleapis.com/v1beta/openai',
    apiKeyEnv: 'GEMINI_API_KEY',
    authHeader: 'Authorization: Bearer',
    note: "Gemini's OpenAI-compatible endpoint",
  },
  ollama: {
    type: 'openai',
    baseUrl: 'http://127.0.0.1:11434/v1',
    authHeader: 'none',
    note: 'local; no key',
  },
  deepseek: {
    type: 'openai',
    baseUrl: 'https://api.deepseek.com/v1',
    apiKeyEnv: 'DEEPSEEK_API_KEY',
    authHeader: 'Authorization: Bearer',
    note: '',
  },
  mimo: {
    type: 'openai',
    baseUrl: 'https://api.xiaomimimo.com/v1',
    apiKeyEnv: 'MIMO_API_KEY',
    authHeader: 'Authorization: Bearer',
    note: 'Xiaomi MiMo (pay-as-you-go; Token Plan users set base_url)',
  },
  nous: {
    type: 'openai',
    baseUrl: 'https://inference-api.nousresearch.com/v1',
    apiKeyEnv: 'NOUS_API_KEY',
    authHeader: 'Authorization: Bearer',
    note: 'Nous Research (Hermes models)',
  },
  custom: {
    type: 'openai',
    baseUrl: '',
    apiKeyEnv: 'RUNPOD_API_KEY',
    authHeader: 'Authorization: Bearer',
    note: 'RunPod serverless vLLM (https://api.runpod.ai/v2/<endpoint>/openai/v1) or any vLLM; base_url required',
  },
  anthropic: {
    type: 'anthropic',
    baseUrl: 'https://api.anthropic.com/v1',
    apiKeyEnv: 'ANTHROPIC_API_KEY',
    authHeader: 'x-api-key (+ anthropic-version)',
    note: 'Messages API',
  },
} as const satisfies Record<string, Preset>

export type PresetName = keyof typeof PRESETS
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[]

export function isPresetName(name: string): name is PresetName {
  return Object.hasOwn(PRESETS, name)
}
