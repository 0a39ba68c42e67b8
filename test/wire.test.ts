/**
 * Each wire format against fixtures taken from the providers' documentation:
 * what goes upstream, and what witness reads back from it.
 */
import { describe, expect, test } from 'bun:test'
import { anthropicAdapter } from '../providers/anthropic.ts'
import { openaiAdapter } from '../providers/openai.ts'
import { anthropicMessageFromOpenAI, anthropicRequestFromOpenAI } from '../providers/translate/to-anthropic.ts'
import { openaiCompletionFromAnthropic, openaiRequestFromAnthropic } from '../providers/translate/to-openai.ts'
import { AnswerError, MalformedResponseError } from '../providers/types.ts'

type Json = Record<string, unknown>
async function fixture(name: string): Promise<Json> {
  const { _source, ...body } = (await Bun.file(`${import.meta.dir}/fixtures/${name}.json`).json()) as Json
  expect(typeof _source).toBe('string')
  return body
}

describe('openai wire', () => {
  test('the request body is forwarded untouched except for model', async () => {
    const request = await fixture('openai-tool-request')
    const body = openaiAdapter.body({ wire: 'openai', body: request, stream: false }, 'kimi-k2.5')
    expect(body).toEqual({ ...request, model: 'kimi-k2.5' })
    expect(request.model).toBe('gpt-4.1') // the client's object is not mutated
  })

  test('streaming asks for usage, without dropping the client stream options', () => {
    const body = openaiAdapter.body({ wire: 'openai', body: { messages: [], stream: true, stream_options: { foo: 1 } }, stream: true }, 'm')
    expect(body.stream_options).toEqual({ foo: 1, include_usage: true })
  })

  test('a documented response gives id, served model and usage', async () => {
    const completion = openaiAdapter.completion(await fixture('openai-chat-response'))
    expect(completion).toMatchObject({
      wire: 'openai',
      responseId: 'chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT',
      servedModel: 'gpt-4.1-2025-04-14',
      usage: { tokensIn: 19, tokensOut: 10, costUsd: null },
    })
  })

  test("OpenRouter's own cost and the model it really served are read", async () => {
    const completion = openaiAdapter.completion(await fixture('openrouter-response'))
    expect(completion.usage).toEqual({ tokensIn: 14, tokensOut: 277, costUsd: 0.0027875 })
    expect(completion.servedModel).toBe('google/gemini-2.5-pro')
  })

  test('endpoint and headers: Bearer auth, path appended before any query', () => {
    expect(openaiAdapter.endpoint('https://api.moonshot.ai/v1/')).toBe('https://api.moonshot.ai/v1/chat/completions')
    expect(openaiAdapter.endpoint('http://h:1/v1?x=1')).toBe('http://h:1/v1/chat/completions?x=1')
    expect(openaiAdapter.headers('k')).toEqual({ 'content-type': 'application/json', authorization: 'Bearer k' })
    expect(openaiAdapter.headers(undefined)).toEqual({ 'content-type': 'application/json' })
  })

  test('a body that is not a chat.completion is malformed; one that is an error is that error', () => {
    expect(() => openaiAdapter.completion({ choices: 'x' })).toThrow(MalformedResponseError)
    expect(() => openaiAdapter.completion([])).toThrow(MalformedResponseError)
    expect(() => openaiAdapter.completion({ error: 'x' })).toThrow(AnswerError)
  })
})

describe('anthropic wire', () => {
  test('a documented response gives id, served model and usage (cache tokens included in input)', async () => {
    const completion = anthropicAdapter.completion(await fixture('anthropic-message-response'))
    expect(completion).toMatchObject({
      wire: 'anthropic',
      responseId: 'msg_013Zva2CMHLNnXjNJJKqJ2EF',
      servedModel: 'claude-sonnet-4-20250514',
      usage: { tokensIn: 2095, tokensOut: 503, costUsd: null },
    })
    expect(anthropicAdapter.completion({ type: 'message', content: [], usage: { input_tokens: 10, cache_read_input_tokens: 90, output_tokens: 1 } }).usage.tokensIn).toBe(100)
  })

  test('endpoint and headers: x-api-key and anthropic-version', () => {
    expect(anthropicAdapter.endpoint('https://api.anthropic.com/v1')).toBe('https://api.anthropic.com/v1/messages')
    expect(anthropicAdapter.headers('k')).toEqual({ 'content-type': 'application/json', 'anthropic-version': '2023-06-01', 'x-api-key': 'k' })
  })

  test('an Anthropic body is forwarded untouched except for model', async () => {
    const request = await fixture('anthropic-tool-request')
    expect(anthropicAdapter.body({ wire: 'anthropic', body: request, stream: false }, 'claude-x')).toEqual({ ...request, model: 'claude-x' })
  })

  test('a body that is not a message is malformed', () => {
    expect(() => anthropicAdapter.completion({ type: 'error', error: {} })).toThrow(MalformedResponseError)
  })
})

describe('translation OpenAI -> Anthropic', () => {
  test('system, text, tool calls, tool results, tools, tool_choice, stop, max tokens, user', async () => {
    const out = anthropicRequestFromOpenAI(await fixture('openai-tool-request'), 'claude-sonnet-4')
    expect(out).toEqual({
      model: 'claude-sonnet-4',
      system: 'You are a helpful assistant.',
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'What is the weather like in Paris today?' }] },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'call_12345xyz', name: 'get_weather', input: { location: 'Paris, France' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_12345xyz', content: '14°C and cloudy' }] },
      ],
      tools: [
        {
          name: 'get_weather',
          description: 'Get current temperature for a given location.',
          input_schema: { type: 'object', properties: { location: { type: 'string', description: 'City and country e.g. Bogotá, Colombia' } }, required: ['location'], additionalProperties: false },
        },
      ],
      tool_choice: { type: 'auto' },
      temperature: 1,
      stop_sequences: ['END'],
      max_tokens: 512,
      metadata: { user_id: 'user-1234' },
    })
  })

  test('images become base64 or URL image blocks; a missing max_tokens gets a default', () => {
    const out = anthropicRequestFromOpenAI(
      {
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'what is this?' },
              { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
              { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } },
            ],
          },
        ],
      },
      'm',
    )
    expect(out.max_tokens).toBe(4096)
    expect((out.messages as Json[])[0]!.content).toEqual([
      { type: 'text', text: 'what is this?' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
      { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
    ])
  })

  test('a documented tool-call completion becomes a tool_use message', async () => {
    expect(anthropicMessageFromOpenAI(await fixture('openai-tool-call-response'), 'up')).toEqual({
      id: 'chatcmpl-abc123',
      type: 'message',
      role: 'assistant',
      model: 'gpt-4o-mini',
      content: [{ type: 'tool_use', id: 'call_abc123', name: 'get_current_weather', input: { location: 'Boston, MA' } }],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: { input_tokens: 82, output_tokens: 17 },
    })
  })

  test('tool_choice allowed_tools: only the tools it names go, and the model must call one of them when its mode is required', () => {
    const fn = (name: string) => ({ type: 'function', function: { name, parameters: { type: 'object', properties: {} } } })
    const ask = { messages: [{ role: 'user', content: 'hi' }], tools: [fn('get_weather'), fn('get_time'), fn('delete_all')] }
    const named = [{ type: 'function', function: { name: 'get_weather' } }, { type: 'function', function: { name: 'get_time' } }]
    for (const [mode, choice] of [['required', { type: 'any' }], ['auto', { type: 'auto' }]] as const) {
      const out = anthropicRequestFromOpenAI({ ...ask, tool_choice: { type: 'allowed_tools', allowed_tools: { mode, tools: named } } }, 'claude-sonnet-4')
      expect([(out.tools as Json[]).map((t) => t.name), out.tool_choice]).toEqual([['get_weather', 'get_time'], choice])
    }
  })

  test('what OpenAI takes and the Messages API refuses is made acceptable: a conversation of system messages alone, a null top_p, a custom tool, a tool_choice or parallel_tool_calls without tools', () => {
    const only = anthropicRequestFromOpenAI({ messages: [{ role: 'system', content: 'Answer in French.' }, { role: 'developer', content: 'Be brief.' }], top_p: null, top_k: 5 }, 'c')
    expect(only).toEqual({ model: 'c', messages: [{ role: 'user', content: [{ type: 'text', text: 'Answer in French.\n\nBe brief.' }] }], max_tokens: 4096, top_k: 5 })
    const ask = [{ role: 'user', content: 'hi' }]
    for (const extra of [{ tool_choice: 'none' }, { parallel_tool_calls: false }, { tools: [{ type: 'custom', custom: { name: 'grep' } }], tool_choice: 'auto' }]) {
      const out = anthropicRequestFromOpenAI({ messages: ask, ...extra }, 'c')
      expect([out.tools, out.tool_choice]).toEqual([undefined, undefined])
    }
    const mixed = anthropicRequestFromOpenAI({ messages: ask, tools: [{ type: 'custom', custom: { name: 'grep' } }, { type: 'function', function: { name: 'get_time' } }], parallel_tool_calls: false }, 'c')
    expect([(mixed.tools as Json[]).map((t) => t.name), mixed.tool_choice]).toEqual([['get_time'], { type: 'auto', disable_parallel_tool_use: true }])
  })

  test('a completion without an id becomes a message with one (Anthropic requires it)', () => {
    const message = anthropicMessageFromOpenAI({ object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }] }, 'up')
    expect(message.id).toMatch(/^msg_[0-9a-f-]{32,}$/)
  })
})

describe('translation Anthropic -> OpenAI', () => {
  test('system, tool use, tool results with text, tools, tool_choice, stop, metadata', async () => {
    const out = openaiRequestFromAnthropic(await fixture('anthropic-tool-request'), 'kimi-k2.5')
    expect(out).toEqual({
      model: 'kimi-k2.5',
      messages: [
        { role: 'system', content: 'You are a helpful assistant.' },
        { role: 'user', content: "What's the weather like in San Francisco?" },
        {
          role: 'assistant',
          content: "I'll check the weather.",
          tool_calls: [{ id: 'toolu_01A09q90qw90lq917835lq9', type: 'function', function: { name: 'get_weather', arguments: '{"location":"San Francisco, CA"}' } }],
        },
        { role: 'tool', tool_call_id: 'toolu_01A09q90qw90lq917835lq9', content: '15 degrees' },
        { role: 'user', content: 'And in Celsius?' },
      ],
      max_tokens: 1024,
      tools: [
        {
          type: 'function',
          function: {
            name: 'get_weather',
            description: 'Get the current weather in a given location',
            parameters: { type: 'object', properties: { location: { type: 'string', description: 'The city and state, e.g. San Francisco, CA' } }, required: ['location'] },
          },
        },
      ],
      tool_choice: 'required',
      parallel_tool_calls: false,
      stop: ['###'],
      user: 'agent-bezalel',
      temperature: 0.5,
    })
  })

  test('images become image_url parts (base64 as a data URL)', () => {
    const out = openaiRequestFromAnthropic(
      {
        max_tokens: 10,
        messages: [
          {
            role: 'user',
            content: [
              { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: '/9j/4AAQ' } },
              { type: 'image', source: { type: 'url', url: 'https://example.com/a.png' } },
              { type: 'text', text: 'what are these?' },
            ],
          },
        ],
      },
      'm',
    )
    expect((out.messages as Json[])[0]).toEqual({
      role: 'user',
      content: [
        { type: 'image_url', image_url: { url: 'data:image/jpeg;base64,/9j/4AAQ' } },
        { type: 'image_url', image_url: { url: 'https://example.com/a.png' } },
        { type: 'text', text: 'what are these?' },
      ],
    })
  })

  test("extended thinking becomes the message's reasoning_content (its signature has no place in OpenAI's format)", () => {
    const message = {
      id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', stop_reason: 'end_turn',
      content: [{ type: 'thinking', thinking: 'Two and two ', signature: 'sig' }, { type: 'redacted_thinking', data: 'x' }, { type: 'thinking', thinking: 'make four.', signature: 'sig' }, { type: 'text', text: '4' }],
      usage: { input_tokens: 5, output_tokens: 9 },
    }
    const choice = (openaiCompletionFromAnthropic(message, 1) as { choices: { message: unknown }[] }).choices[0]!
    expect(choice.message).toEqual({ role: 'assistant', content: '4', reasoning_content: 'Two and two make four.' })
    const plain = openaiCompletionFromAnthropic({ ...message, content: [{ type: 'text', text: '4' }] }, 1) as { choices: { message: unknown }[] }
    expect(plain.choices[0]!.message).toEqual({ role: 'assistant', content: '4' })
  })

  test('a documented tool_use message becomes a chat.completion with tool_calls', async () => {
    expect(openaiCompletionFromAnthropic(await fixture('anthropic-tool-use-response'), 1700000000)).toEqual({
      id: 'msg_01Aq9w938a90dw8q',
      object: 'chat.completion',
      created: 1700000000,
      model: 'claude-sonnet-4-20250514',
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: "I'll check the current weather in San Francisco for you.",
            tool_calls: [{ id: 'toolu_01A09q90qw90lq917835lq9', type: 'function', function: { name: 'get_weather', arguments: '{"location":"San Francisco, CA","unit":"celsius"}' } }],
          },
          finish_reason: 'tool_calls',
          logprobs: null,
        },
      ],
      usage: { prompt_tokens: 384, completion_tokens: 96, total_tokens: 480 },
    })
  })
})
